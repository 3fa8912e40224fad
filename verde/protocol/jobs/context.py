"""A job made concrete: program, dataset, module structure, initial state, batches, one step.

Why one place: the provider (real tensors), the arbiter (shape-only meta replay of step ``s``,
Verde, Arun et al. 2025) and the offline verifier must all run *the same* step function, or
the arbiter's idea of the graph would differ from an honest provider's and an honest provider
could lose. ``JobContext.step`` is a pure function ``(state s-1, batch s, s) -> state s``.

State names: ``param/<name>`` (parameters), ``<slot>/<name>`` under ``opt/`` (optimizer
state), ``grad/<name>`` (gradient jobs: the gradient at state 0's parameters), ``out/<s>``
(inference jobs: the outputs of the batch of step ``s``, one entry per step, zeros until step
``s`` ran -- so the final state commits to every sample's outputs and each batch is proven on
its own against the signed final root), ``gen/...`` (generate jobs,
``verde.protocol.jobs.generation``: every prompt's token buffer and done flag, and the logits
the step sampled from) and ``rng`` (int64 ``[seed, step]``: all randomness of a step is a
function of the seed and the step number, so this is the whole RNG state).

Module buffers are not state: a program computes them inside the step
(``Program.step_buffers``), so they are traced like every other value.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from proofs import canonical_json
from proofs.state import StateCommitment
from verde.protocol.jobs.batching import batch_indices
from verde.protocol.jobs.datasets import Dataset, load_dataset
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.generate_step import (
    check_generate,
    generate_step,
    generate_structure,
    initial_generate_entries,
)
from verde.protocol.jobs.generation import Generation
from verde.protocol.jobs.optimizers import init_optimizer_state, optimizer_update
from verde.protocol.jobs.program_call import GENERATE_IDS, ProgramCall, output_meta, vocab_size
from verde.protocol.jobs.programs import Program
from verde.protocol.jobs.registry import get_program
from verde.protocol.jobs.spec import JobSpec

PARAM = "param/"
OPT = "opt/"
GRAD = "grad/"
BATCH = "batch/"
RNG = "rng"
OUT = "out/"


def output_entry(step: int) -> str:
    """The state entry holding the outputs of an inference job's step ``step``."""
    return f"{OUT}{step}"


@dataclass
class JobContext:
    """Everything derived from a spec that running or judging a step needs."""

    spec: JobSpec
    program: Program
    dataset: Dataset
    module: nn.Module
    param_names: tuple[str, ...]
    # functional_call swaps the shared module's parameters while it runs, and contexts are
    # cached per spec, so one step at a time per context (several providers or disputes can
    # share a process).
    _step_lock: threading.RLock = field(default_factory=threading.RLock, init=False,
                                        repr=False, compare=False)
    _vocab: int | None = field(default=None, init=False, repr=False, compare=False)
    _generation: Generation | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_spec(cls, spec: JobSpec) -> JobContext:
        return _context_for(spec)

    @property
    def step_lock(self) -> threading.RLock:
        """Held while the shared module runs with some step's parameters (see the field): code
        outside this class that drives the module directly (a cached decoder) takes it too."""
        return self._step_lock

    @property
    def generation(self) -> Generation:
        """A generate job's decoding settings (``ValueError`` for other kinds)."""
        if self.spec.kind != "generate":
            raise ValueError(f"job {self.spec.job_id[:16]} is a {self.spec.kind} job, not a "
                             "generate job")
        if self._generation is None:  # read at every step: parsed once
            self._generation = Generation.from_spec(self.spec.generation)
        return self._generation

    # --- state -----------------------------------------------------------------------------

    def rng_state(self, step: int) -> torch.Tensor:
        return torch.tensor([self.spec.seed, step], dtype=torch.int64)

    def initial_state(self, params: Mapping[str, torch.Tensor] | None = None,
                      ) -> dict[str, torch.Tensor]:
        """State 0: given or seeded parameters, zero optimizer state (or outputs, gradients).

        A job with ``init`` starts from an uploaded state, which cannot be derived here; build
        such a state with ``params`` (keyed by parameter name) and put its root in the spec.
        """
        if params is None:
            if self.spec.init:
                raise JobSpecError(
                    f"job {self.spec.job_id[:16]} starts from the uploaded state "
                    f"{self.spec.init['root']}; it cannot be derived from the spec"
                )
            params = self.program.initial_parameters(self.module, self.spec.seed)
        missing = sorted(set(self.param_names) - set(params))
        if missing:
            raise ValueError(f"initial_state: parameters {missing} are missing")
        params = {n: params[n] for n in self.param_names}
        state = {PARAM + n: params[n].detach().clone() for n in self.param_names}
        if self.spec.kind == "train":
            opt = init_optimizer_state(self.spec.optimizer, params)
            state.update({OPT + k: v for k, v in opt.items()})
        elif self.spec.kind == "gradient":
            state.update({GRAD + n: torch.zeros_like(state[PARAM + n]) for n in self.param_names})
        elif self.spec.kind == "generate":
            state.update(initial_generate_entries(self.generation, self.vocab_size()))
        else:
            shape, dtype = self.output_meta()
            for s in range(1, self.spec.steps + 1):
                state[output_entry(s)] = torch.zeros(shape, dtype=dtype)
        state[RNG] = self.rng_state(0)
        return state

    def initial_state_root(self) -> bytes:
        """Root of state 0: the spec's ``init`` root, or that of the seeded state."""
        if self.spec.init_root is not None:
            return self.spec.init_root
        return StateCommitment.from_tensors(self.initial_state()).root

    def check_initial_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Refuse an uploaded state 0 that does not fit this job (names, shapes, dtypes, root)."""
        expected = self.state_structure()
        if set(state) != set(expected):
            missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
            raise JobSpecError(f"initial state of job {self.spec.job_id[:16]}: missing entries "
                               f"{missing}, unexpected entries {extra}")
        for name, (shape, dtype) in expected.items():
            t = state[name]
            if tuple(t.shape) != tuple(shape) or t.dtype != dtype:
                raise JobSpecError(
                    f"initial state of job {self.spec.job_id[:16]}: {name} is "
                    f"{t.dtype} {list(t.shape)}, expected {dtype} {list(shape)}")
        if not torch.equal(state[RNG], self.rng_state(0)):
            raise JobSpecError(f"initial state of job {self.spec.job_id[:16]}: rng must be "
                               f"[seed, 0] = {self.rng_state(0).tolist()}")
        root = StateCommitment.from_tensors(dict(state)).root
        if root != self.initial_state_root():
            raise JobSpecError(f"initial state of job {self.spec.job_id[:16]}: its root "
                               f"{root.hex()} is not the job's {self.initial_state_root().hex()}")

    def vocab_size(self) -> int:
        """A generate job's vocabulary: the width of the program's logits (a meta forward)."""
        with self._step_lock:
            if self._vocab is None:  # a meta forward; the state's shapes ask for it often
                self._vocab = vocab_size(self.program, self.module)
            return self._vocab

    def output_meta(self) -> tuple[tuple[int, ...], torch.dtype]:
        """Shape and dtype of one inference batch's outputs (from a meta forward)."""
        with self._step_lock:
            return output_meta(self.program, self.module,
                               {k[len(BATCH):]: v for k, v in self.batch_structure().items()})

    def state_structure(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Name -> (shape, dtype) of every state tensor (the same at every step)."""
        return _state_structure(self)

    # --- batches ---------------------------------------------------------------------------

    def batch_indices(self, step: int) -> list[int]:
        if self.spec.kind == "gradient":
            if step != 1:
                raise ValueError(f"a gradient job has only step 1, not {step}")
            return list(self.spec.samples)
        if self.spec.kind == "generate":
            return [self.generation.position(step)[0]]
        return batch_indices(self.spec.kind, self.spec.seed, step, self.dataset.n_samples,
                             self.spec.batch_size)  # fmt: skip

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The batch of ``step`` keyed ``batch/<field>``."""
        return {BATCH + k: v for k, v in self.dataset.batch(self.batch_indices(step)).items()}

    def batch_structure(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        b = self.spec.batch_size
        return {BATCH + k: ((b, *shape), dtype)
                for k, (shape, dtype) in self.dataset.sample_shapes().items()}  # fmt: skip

    # --- the step --------------------------------------------------------------------------

    def prepare_leaves(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Fresh leaf tensors for a step: parameters require grad in training jobs.

        Leaves are distinct tensors: a tracer knows a tensor by its storage and view, and two
        state entries sharing one (say, an uploaded state whose slots alias) would otherwise
        be recorded under one name in a real run but under two in the arbiter's shape-only
        replay, where every entry is a fresh meta tensor.
        """
        out = {}
        seen: set[tuple[object, ...]] = set()
        for name, t in state.items():
            leaf = t.detach()
            if not leaf.is_meta:
                view = (leaf.untyped_storage()._cdata, leaf.storage_offset(),
                        tuple(leaf.shape), tuple(leaf.stride()), leaf.dtype)
                if view in seen:
                    leaf = leaf.clone()
                seen.add(view)
            if name.startswith(PARAM) and self.spec.kind in ("train", "gradient"):
                leaf = leaf.requires_grad_(True)
            out[name] = leaf
        return out

    def step(
        self, state: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor], step: int
    ) -> dict[str, torch.Tensor]:
        with self._step_lock:
            return self._step(state, batch, step)

    def _step(
        self, state: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor], step: int
    ) -> dict[str, torch.Tensor]:
        """Compute state ``step`` from state ``step - 1`` (leaves from ``prepare_leaves``).

        The ``rng`` entry is not computed here (it is ``[seed, step]``); callers add it.
        """
        fields = {k[len(BATCH):]: v for k, v in batch.items()}
        params = {n: state[PARAM + n] for n in self.param_names}
        if self.spec.kind == "generate":
            logits = functools.partial(self.generation_logits, params)
            return generate_step(self.generation, {k: v for k, v in state.items() if k != RNG},
                                 fields, step, prompt_field=self.program.prompt_field,
                                 last_logits=logits)
        if self.spec.kind == "infer":
            inner = self._inner(params, fields)
            wrapped = ProgramCall(self.program, self.module, "outputs")
            with torch.no_grad():
                out = torch.func.functional_call(wrapped, inner, (fields,))
            new_state = {PARAM + n: params[n] for n in self.param_names}
            new_state.update({k: v for k, v in state.items() if k.startswith(OUT)})
            new_state[output_entry(step)] = out
            return new_state
        if self.spec.partitions == 1:
            grad_map = self._loss_gradients(params, fields)
        else:
            grad_map = self._mean_of_partitions(
                [self._loss_gradients(params, self._partition_fields(fields, p))
                 for p in range(self.spec.partitions)])
        if self.spec.kind == "gradient":
            new_state = {PARAM + n: params[n].detach() for n in self.param_names}
            new_state.update({GRAD + n: g for n, g in grad_map.items()})
            return new_state
        return self._update(state, params, grad_map, step)

    def generation_logits(self, params: Mapping[str, torch.Tensor], ids: torch.Tensor,
                          ) -> torch.Tensor:
        """The program's last-position logits ``[B, V]`` of ``ids`` (int64 ``[B, n]``) at
        ``params`` (keyed by parameter name): the forward of a generate step."""
        inner = self._inner(params, {self.program.prompt_field: ids})
        with self._step_lock, torch.no_grad():
            logits: torch.Tensor = torch.func.functional_call(
                ProgramCall(self.program, self.module, "generate"), inner, ({GENERATE_IDS: ids},))
        return logits

    # --- a step cut into partitions (``JobSpec.partitions``) -------------------------------

    def partition_gradients(self, state: Mapping[str, torch.Tensor],
                            batch: Mapping[str, torch.Tensor], partitions: range,
                            ) -> list[dict[str, torch.Tensor]]:
        """The loss gradients of ``partitions`` of the step's batch, in order (leaves from
        ``prepare_leaves``): what one worker of a scaled-out provider computes. Random ops
        draw from the stream the caller's execution context holds, which must stand where
        the first of them starts in the sequential step (see ``execution.partition_stream``)."""
        fields = {k[len(BATCH):]: v for k, v in batch.items()}
        params = {n: state[PARAM + n] for n in self.param_names}
        with self._step_lock:
            return [self._loss_gradients(params, self._partition_fields(fields, p))
                    for p in partitions]

    def apply_partition_gradients(self, state: Mapping[str, torch.Tensor],
                                  parts: Sequence[Mapping[str, torch.Tensor]], step: int,
                                  ) -> dict[str, torch.Tensor]:
        """State ``step`` from state ``step - 1`` and the gradients of all its partitions (in
        partition order): the same ops, on the same values, as the rest of :meth:`step`."""
        if self.spec.kind != "train" or len(parts) != self.spec.partitions:
            raise ValueError(f"job {self.spec.job_id[:16]}: expected the gradients of "
                             f"{self.spec.partitions} partitions of a training step, got "
                             f"{len(parts)} ({self.spec.kind} job)")
        params = {n: state[PARAM + n] for n in self.param_names}
        with self._step_lock:
            return self._update(state, params, self._mean_of_partitions(parts), step)

    def _partition_fields(self, fields: Mapping[str, torch.Tensor], partition: int,
                          ) -> dict[str, torch.Tensor]:
        size = self.spec.batch_size // self.spec.partitions
        return {k: v[partition * size:(partition + 1) * size] for k, v in fields.items()}

    def _mean_of_partitions(self, parts: Sequence[Mapping[str, torch.Tensor]],
                            ) -> dict[str, torch.Tensor]:
        """``(g_0 + g_1 + ... + g_{P-1}) / P``, added left to right (coded training's step
        gradient, ``verde.integration.coded_training.jobs``)."""
        total = dict(parts[0])
        for part in parts[1:]:
            total = {n: total[n] + part[n] for n in self.param_names}
        return {n: total[n] / len(parts) for n in self.param_names}

    def _loss_gradients(self, params: Mapping[str, torch.Tensor],
                        fields: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inner = self._inner(params, fields)
        wrapped = ProgramCall(self.program, self.module, "loss")
        loss = torch.func.functional_call(wrapped, inner, (dict(fields),))
        grads = torch.autograd.grad(loss, [params[n] for n in self.param_names])
        return dict(zip(self.param_names, grads, strict=True))

    def _inner(self, params: Mapping[str, torch.Tensor], fields: Mapping[str, torch.Tensor],
               ) -> dict[str, torch.Tensor]:
        """The wrapped module's parameters and its buffers, computed inside the step by the
        program (``Program.step_buffers``), so they are traced like every other value."""
        inner = {"inner." + n: p for n, p in params.items()}
        inner.update({"inner." + n: b
                      for n, b in self.program.step_buffers(self.module, fields).items()})
        return inner

    def _update(self, state: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor],
                grad_map: Mapping[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        opt_state = {k[len(OPT):]: v for k, v in state.items() if k.startswith(OPT)}
        new_params, new_opt = optimizer_update(self.spec.optimizer, params, dict(grad_map),
                                               opt_state, step)  # fmt: skip
        new_state = {PARAM + n: new_params[n].detach() for n in self.param_names}
        new_state.update({OPT + k: v for k, v in new_opt.items()})
        return new_state


@functools.lru_cache(maxsize=16)
def _context_cached(spec_json: str) -> JobContext:
    spec = JobSpec.from_mapping(json.loads(spec_json))
    program = get_program(spec.program)
    dataset = load_dataset(spec.dataset)
    with torch.device("meta"):
        module = program.build(spec.config, dataset.sample_shapes())
    # Training-only behaviour (dropout) is on in training and gradient jobs, off in inference.
    module.train(spec.kind not in ("infer", "generate"))
    _check_buffers(program, module, dataset)
    names = tuple(n for n, _ in module.named_parameters())
    if spec.kind == "generate":
        check_generate(spec, program, module, dataset)
    too_far = [i for i in spec.samples if i >= dataset.n_samples]
    if too_far:
        raise JobSpecError(f"job spec: samples {too_far[:5]} are out of range for a dataset of "
                           f"{dataset.n_samples} samples")
    return JobContext(spec, program, dataset, module, names)


def _check_buffers(program: Program, module: nn.Module, dataset: Dataset) -> None:
    """Every buffer of the module must be computed by the program inside the step."""
    buffers = {n for n, _ in module.named_buffers()}
    if not buffers:
        return
    fields = {k: torch.empty((1, *shape), dtype=dtype, device="meta")
              for k, (shape, dtype) in dataset.sample_shapes().items()}
    supplied = set(program.step_buffers(module, fields))
    missing = sorted(buffers - supplied)
    if missing:
        raise JobSpecError(f"program {program.name}: module buffers {missing[:8]} are not "
                           "computed by the program (Program.step_buffers); a captured "
                           "constant tensor could not be checked by an arbiter")


def _context_for(spec: JobSpec) -> JobContext:
    return _context_cached(canonical_json(spec.to_dict()).decode())


def _state_structure(ctx: JobContext) -> dict[str, Any]:
    out: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    for n, p in ctx.module.named_parameters():
        out[PARAM + n] = (tuple(p.shape), torch.float32)
    if ctx.spec.kind == "train":
        from verde.protocol.jobs.optimizers import optimizer_slots

        for slot in optimizer_slots(ctx.spec.optimizer):
            for n in ctx.param_names:
                out[f"{OPT}{slot}/{n}"] = out[PARAM + n]
    elif ctx.spec.kind == "gradient":
        for n in ctx.param_names:
            out[GRAD + n] = out[PARAM + n]
    elif ctx.spec.kind == "generate":
        out.update(generate_structure(ctx.generation, ctx.vocab_size()))
    else:
        meta = ctx.output_meta()
        for s in range(1, ctx.spec.steps + 1):
            out[output_entry(s)] = meta
    out[RNG] = ((2,), torch.int64)
    return out
