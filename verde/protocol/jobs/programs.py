"""The program registry: what a job's ``program`` name means, and how to add your own.

A *program* is PyTorch code with a fixed interface, so that a provider can run it, the arbiter
can replay one step of it on shape-only (meta) tensors, and the parameters can be initialised
identically everywhere (Verde, Arun et al. 2025: the arbiter derives the graph structure
itself). Register your own by subclassing ``Program`` and calling ``register_program``::

    import torch
    from verde.protocol.jobs.programs import Program
    from verde.protocol.jobs.registry import register_program

    class Linear(Program):
        name = "my-linear"
        kinds = ("train", "infer")
        defaults = {"classes": 10}

        def build(self, config, fields):
            (features,), _ = fields["x"]
            return torch.nn.Linear(features, config["classes"])

        def outputs(self, module, batch):
            return module(batch["x"])

        def loss(self, module, batch):
            return torch.nn.functional.cross_entropy(self.outputs(module, batch), batch["y"])

    register_program(Linear())

Rules a program must follow (checked at submission by
``verde.protocol.graph.admission.admit_job``):
control flow and shapes must not depend on tensor values (no ``.item()``, ``nonzero``, data
dependent Python branches), every tensor the step uses must come from the parameters, the
batch, or an op inside the step (no captured constant tensors), and no module buffers.
``build`` is called under ``torch.device("meta")``; parameters are set by
``initial_parameters`` (deterministic, see below) and passed with ``torch.func.functional_call``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from verde.protocol.jobs.errors import JobSpecError

FieldShapes = Mapping[str, tuple[tuple[int, ...], torch.dtype]]


class Program:
    """Base class of every program; subclasses set ``name``, ``defaults`` and the methods."""

    name: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ("train", "infer")
    defaults: ClassVar[dict[str, Any]] = {}
    #: An explicit code version (``verde.protocol.jobs.code``): the job then binds this string
    #: instead of the source digest, and ``source_digest`` must name the sources it covers.
    version: ClassVar[str | None] = None
    source_digest: ClassVar[str | None] = None
    #: Modules beyond the class's own (and its bases') whose source is part of its identity.
    source_modules: ClassVar[tuple[str, ...]] = ()

    #: The dataset field a generate job reads its prompts from (int64 token ids).
    prompt_field: ClassVar[str] = "input_ids"

    def normalize_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Validate ``config`` against ``defaults`` (same keys, same JSON types) and fill in."""
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            raise JobSpecError(
                f"program {self.name}: unknown config key(s) {unknown}; "
                f"known: {sorted(self.defaults)}"
            )
        out = {}
        for key, default in self.defaults.items():
            value = config.get(key, default)
            if isinstance(default, bool) != isinstance(value, bool) or not isinstance(
                value, type(default) if not isinstance(default, float) else (int, float)
            ):
                raise JobSpecError(
                    f"program {self.name}: config {key} must be {type(default).__name__}, "
                    f"got {value!r}"
                )
            # An int whose default is 0 means "derived" when 0 (gpt's context), so may be 0.
            if isinstance(default, int) and not isinstance(default, bool) and (
                    value < 0 if default == 0 else value <= 0):
                raise JobSpecError(f"program {self.name}: config {key} must be positive")
            if isinstance(default, float) and not (math.isfinite(value) and value >= 0):
                raise JobSpecError(f"program {self.name}: config {key} must be a finite "
                                   f"number >= 0, got {value!r}")
            out[key] = float(value) if isinstance(default, float) else value
        self.check_config(out)
        return out

    def check_config(self, config: dict[str, Any]) -> None:
        """Extra checks on a filled-in config; raise ``JobSpecError``."""

    def check_data(self, config: Mapping[str, Any], fields: Mapping[str, np.ndarray]) -> None:
        """Checks of the dataset's values a program needs (label range...); ``JobSpecError``."""

    def identity_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a normalized config that is the job's identity: everything but where
        this machine finds local files (as a dataset's ``location``)."""
        return dict(config)

    def step_buffers(self, module: torch.nn.Module, batch: Mapping[str, torch.Tensor],
                     ) -> dict[str, torch.Tensor]:
        """Values of the module's buffers, computed inside the step from factory ops (so they
        are traced, and a shape-only replay computes them the same way); keyed by buffer name.
        A module's buffers must all be supplied here: a captured constant could not be checked.
        """
        return {}

    def build(self, config: Mapping[str, Any], fields: FieldShapes) -> torch.nn.Module:
        """The module (built on the meta device; only its structure is used)."""
        raise NotImplementedError

    def outputs(self, module: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The model's outputs on a batch (what an inference job commits to)."""
        raise NotImplementedError

    def loss(self, module: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The scalar training loss on a batch."""
        raise NotImplementedError

    def generation_logits(self, module: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
        """A causal LM's logits at the last position of ``ids`` (int64 ``[B, n]``): ``[B, V]``,
        from a forward over exactly those ``n`` tokens (generate jobs,
        ``verde.protocol.jobs.generation``). Programs that generate override this."""
        raise JobSpecError(f"program {self.name} does not generate text")

    def check_generation(self, config: Mapping[str, Any], module: torch.nn.Module,
                         longest: int) -> None:
        """Refuse a config (and its built ``module``) that cannot generate sequences of up to
        ``longest`` tokens (``JobSpecError``)."""
        if "generate" not in self.kinds:
            raise JobSpecError(f"program {self.name} does not generate text")

    def init_rule(self, name: str, shape: tuple[int, ...]) -> tuple[str, float]:
        """How parameter ``name`` starts: ("uniform", bound), ("zeros", 0) or ("ones", 0).

        Default: norms' weights ones, biases zeros, everything else uniform in
        ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``.
        """
        last = name.rsplit(".", 1)[-1]
        if last == "bias":
            return ("zeros", 0.0)
        if len(shape) == 1:
            return ("ones", 0.0)
        fan_in = math.prod(shape[1:])
        return ("uniform", 1.0 / math.sqrt(fan_in))

    def initial_parameters(
        self, module: torch.nn.Module, seed: int
    ) -> dict[str, torch.Tensor]:
        """Deterministic initial parameters, the same bits on every machine
        (:func:`seeded_parameter` for each, following ``init_rule``)."""
        return {name: seeded_parameter(seed, name, tuple(p.shape), *self.init_rule(
                    name, tuple(p.shape)), program=self.name)
                for name, p in module.named_parameters()}


def seeded_parameter(seed: int, name: str, shape: tuple[int, ...], rule: str, bound: float,
                     *, program: str = "") -> torch.Tensor:
    """One parameter's initial value: zeros, ones, or uniform in ``[-bound, bound]``.

    Uniform draws are numpy Philox float32 values ``u`` in [0, 1) (exact multiples of
    2**-24), mapped by ``(2u - 1) * bound`` in float32 — two correctly rounded operations.
    The key of each parameter is derived from the job seed and the parameter name.
    """
    if rule == "zeros":
        array = np.zeros(shape, dtype=np.float32)
    elif rule == "ones":
        array = np.ones(shape, dtype=np.float32)
    elif rule == "uniform":
        key = int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little")
        u = np.random.Generator(np.random.Philox(key=key)).random(size=shape, dtype=np.float32)
        array = (u * np.float32(2.0) - np.float32(1.0)) * np.float32(bound)
    else:
        raise JobSpecError(f"program {program}: unknown init rule {rule!r} for {name}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
