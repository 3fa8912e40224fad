"""Rule plumbing: the runner every pure function goes through, base classes, the registry.

Why a registry: the simulation harness and the benches iterate over every aggregator,
pre-aggregator and attack by name, so adding a rule means registering it once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from verde.robust._core import Array, Stack, as_stack, check_f, to_numpy
from verde.robust.errors import DeterministicModeUnavailableError

Kernel = Callable[..., Array]

AGGREGATORS: dict[str, type[Aggregator]] = {}
PRE_AGGREGATORS: dict[str, type[PreAggregator]] = {}


def _reproducible_context() -> contextlib.AbstractContextManager[Any]:
    """``repops.reproducible()`` if this install has it, else a clear error saying why not."""
    import repops

    factory = getattr(repops, "reproducible", None)
    if factory is None:
        raise DeterministicModeUnavailableError(
            "deterministic=True runs the aggregation under repops.reproducible(), which this "
            "repops does not provide yet; run without deterministic=True or update repops"
        )
    return factory()


@contextlib.contextmanager
def _deterministic_stack(inputs: Any, name: str) -> Iterator[tuple[Stack, Stack]]:
    """(caller stack, float32 CPU torch stack) with the repops mode active inside the block."""
    caller = as_stack(inputs, name)
    ctx = _reproducible_context()
    data = caller.data
    t = data.detach().to("cpu") if caller.is_torch else torch.from_numpy(np.asarray(data))
    t = t.to(torch.float32)
    with ctx:
        yield caller, as_stack(t, name, deterministic=True)


def run_rule(kernel: Kernel, inputs: Any, *, deterministic: bool = False, **params: Any) -> Array:
    """Normalise ``inputs``, run ``kernel(stack, **params)`` -> vector, restore the caller's type.

    With ``deterministic=True`` the kernel runs on a float32 CPU torch copy inside
    ``repops.reproducible()`` so the d-sized work (Gram product, stable sorts, combinations,
    norms) runs on repops kernels in strict mode; the result is converted back to the caller's
    type, dtype and device. What repops does not see: the n x n decision logic (distance
    ranking, subset search, Weiszfeld weights) runs in float64 numpy. Its elementwise steps are
    correctly rounded IEEE operations, but numpy's reductions and LAPACK's ``eigh`` (CAF, DnC,
    Flag, SMEA, heuristic mimic) are not guaranteed to give the same bits on other CPUs, so for
    those rules a near-tie could resolve differently on another machine.
    """
    if deterministic:
        with _deterministic_stack(inputs, "inputs") as (caller, stack):
            vec = kernel(stack, **params)
        return caller.restore(to_numpy(vec) if not caller.is_torch else vec)
    stack = as_stack(inputs)
    return stack.restore(kernel(stack, **params))


def run_pre(kernel: Kernel, inputs: Any, *, deterministic: bool = False, **params: Any) -> Array:
    """Like :func:`run_rule` for kernels returning an ``(m, d)`` stack of vectors."""
    if deterministic:
        with _deterministic_stack(inputs, "inputs") as (caller, stack):
            mat = kernel(stack, **params)
        return caller.restore_stack(to_numpy(mat) if not caller.is_torch else mat)
    stack = as_stack(inputs)
    return stack.restore_stack(kernel(stack, **params))


class Aggregator:
    """A robust aggregation rule: ``rule(inputs) -> one vector`` of the inputs' type and dtype.

    Subclasses set ``name`` and implement :meth:`aggregate`. The pure functions (``krum(...)``)
    are the reference API; classes hold parameters (and state for stateful rules).
    """

    name: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False  # FLTrust needs the server's reference gradient

    def __init__(self, f: int = 0, *, deterministic: bool = False) -> None:
        self.f = check_f(f)
        self.deterministic = deterministic

    def __call__(self, inputs: Any, **kwargs: Any) -> Array:
        return self.aggregate(inputs, **kwargs)

    def aggregate(self, inputs: Any, **kwargs: Any) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:
        """Forget state kept between rounds (stateful rules override)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(f={self.f})"


class PreAggregator:
    """Maps n worker vectors to m vectors (same type); composes in front of any aggregator."""

    name: ClassVar[str] = ""

    def __init__(self, f: int = 0, *, deterministic: bool = False) -> None:
        self.f = check_f(f)
        self.deterministic = deterministic

    def __call__(self, inputs: Any) -> Array:
        return self.transform(inputs)

    def transform(self, inputs: Any) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(f={self.f})"


class Composed(Aggregator):
    """Pre-aggregators applied in order, then an aggregator: ``Composed([NNM(f)], Krum(f))``."""

    name = "composed"

    def __init__(self, pre: list[PreAggregator], aggregator: Aggregator) -> None:
        super().__init__(aggregator.f, deterministic=aggregator.deterministic)
        self.pre = list(pre)
        self.aggregator = aggregator
        self.needs_reference = aggregator.needs_reference  # type: ignore[misc]

    def aggregate(self, inputs: Any, **kwargs: Any) -> Array:
        x = inputs
        for p in self.pre:
            x = p(x)
        return self.aggregator(x, **kwargs)

    def reset(self) -> None:
        self.aggregator.reset()

    def __repr__(self) -> str:
        inner = " -> ".join([*(repr(p) for p in self.pre), repr(self.aggregator)])
        return f"Composed({inner})"


def compose(*stages: PreAggregator | Aggregator) -> Composed:
    """``compose(NNM(f=4), Bucketing(s=2), Krum(f=4))``: pre-aggregators then one aggregator."""
    if not stages or not isinstance(stages[-1], Aggregator):
        raise ValueError("compose: the last stage must be an Aggregator")
    pre = list(stages[:-1])
    for p in pre:
        if not isinstance(p, PreAggregator):
            raise ValueError(f"compose: {p!r} is not a PreAggregator; only the last stage may "
                             "be an aggregator")
    return Composed(pre, stages[-1])  # type: ignore[arg-type]


def register_aggregator(cls: type[Aggregator]) -> type[Aggregator]:
    AGGREGATORS[cls.name] = cls
    return cls


def register_pre_aggregator(cls: type[PreAggregator]) -> type[PreAggregator]:
    PRE_AGGREGATORS[cls.name] = cls
    return cls
