"""Rule plumbing: the runner every pure function goes through, base classes, the registry.

Why a registry: the simulation harness and the benches iterate over every aggregator,
pre-aggregator and attack by name, so adding a rule means registering it once.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from verde.robust._core import Array, Stack, as_stack, check_f, check_weights, to_numpy
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


def run_rule(kernel: Kernel, inputs: Any, *, deterministic: bool = False,
             weights: Any = None, **params: Any) -> Array:
    """Normalise ``inputs``, run ``kernel(stack, **params)`` -> vector, restore the caller's type.

    With ``deterministic=True`` the kernel runs on a float32 CPU torch copy inside
    ``repops.reproducible()`` so the d-sized work (Gram product, stable sorts, combinations,
    norms) runs on repops kernels in strict mode; the result is converted back to the caller's
    type, dtype and device. What repops does not see: the n x n decision logic (distance
    ranking, subset search, Weiszfeld weights) runs in float64 numpy. Its elementwise steps are
    correctly rounded IEEE operations, but numpy's reductions and LAPACK's ``eigh`` (CAF, DnC,
    Flag, SMEA, heuristic mimic) are not guaranteed to give the same bits on other CPUs, so for
    those rules a near-tie could resolve differently on another machine.

    ``weights`` (rules with ``supports_weights``): one weight per input, used where the kernel
    averages a subset it selected (:meth:`Stack.subset_average`).
    """
    if deterministic:
        with _deterministic_stack(inputs, "inputs") as (caller, stack):
            stack.weights = check_weights(weights, stack.n)
            vec = kernel(stack, **params)
        return caller.restore(to_numpy(vec) if not caller.is_torch else vec)
    stack = as_stack(inputs)
    stack.weights = check_weights(weights, stack.n)
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
    #: The rule takes ``weights=`` (one non-negative weight per input, e.g. example counts):
    #: its output is an average over a subset it selects, and the weighted form averages that
    #: same subset with the given weights instead of uniformly.
    supports_weights: ClassVar[bool] = False
    #: Each output coordinate depends on that coordinate of the inputs only, so the rule may
    #: run on any split of the coordinates (a DDP bucket) and give the same result.
    coordinatewise: ClassVar[bool] = False

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
    #: Output i stands for input i (n in, n out), so per-input weights still apply after it.
    keeps_workers: ClassVar[bool] = True

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
        self.supports_weights = (  # type: ignore[misc]
            aggregator.supports_weights and all(p.keeps_workers for p in self.pre))
        self.coordinatewise = aggregator.coordinatewise and not self.pre  # type: ignore[misc]

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


_OWN_PARAMETERS = ("inputs", "honest", "f", "deterministic")


def _wrapper_init(base: type[Any], params: dict[str, Any], fresh_seed: bool,
                  label: str) -> Callable[..., None]:
    def __init__(self: Any, f: int = 0, *, deterministic: bool = False, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(params) - ({"seed"} if fresh_seed else set()))
        if unknown:
            raise ValueError(f"{label}: unknown parameter(s) {unknown}; known: "
                             f"{sorted(params) + (['seed'] if fresh_seed else [])}")
        base.__init__(self, f, deterministic=deterministic)
        self.params = {k: kwargs.get(k, default) for k, default in params.items()}
        for k, v in self.params.items():
            setattr(self, k, v)
        if fresh_seed:
            import numpy as np

            self._rng = np.random.default_rng(kwargs.get("seed", 0))

    return __init__


def rule_class(name: str, func: Callable[..., Array], summary: str, *,
               base: type[Aggregator] | type[PreAggregator] | None = None,
               defaults: dict[str, Any] | None = None, call_kwargs: tuple[str, ...] = (),
               fresh_seed: bool = False, **class_attrs: Any) -> type[Any]:
    """Generate (and register) the class wrapping a pure rule function, as attacks are made.

    The constructor takes ``f``, ``deterministic`` and, as keyword arguments, every other
    parameter of ``func`` (default: the function's default, or ``defaults``); each one becomes
    an attribute. ``call_kwargs`` are taken per call instead (FLTrust's ``reference``, the
    strategy's ``weights``). ``fresh_seed``: a ``seed`` constructor argument seeds a generator
    that draws a fresh ``seed`` for every call (rules that sample coordinates each round).
    """
    base = base or Aggregator
    sig = inspect.signature(func)
    takes_f = "f" in sig.parameters
    params = {k: p.default for k, p in sig.parameters.items()
              if k not in _OWN_PARAMETERS and k not in call_kwargs
              and not (fresh_seed and k == "seed")}
    params.update(defaults or {})
    missing = [k for k, v in params.items() if v is inspect.Parameter.empty]
    if missing:
        raise TypeError(f"rule_class({name!r}): parameters {missing} need defaults")
    method = "transform" if issubclass(base, PreAggregator) else "aggregate"

    def run(self: Any, inputs: Any, **kwargs: Any) -> Array:
        extra = {k: kwargs.get(k) for k in call_kwargs}
        if fresh_seed:
            extra["seed"] = int(self._rng.integers(2**63 - 1))
        if takes_f:
            extra["f"] = self.f
        return func(inputs, **self.params, **extra, deterministic=self.deterministic)

    def __repr__(self: Any) -> str:
        shown = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(f={self.f}{shown})"

    class_name = class_attrs.pop("class_name", None) or name.title().replace("_", "")
    cls = type(class_name, (base,), {
        "name": name, "__doc__": f"{summary}; see :func:`{func.__name__}`.",
        "__init__": _wrapper_init(base, params, fresh_seed, name), method: run,
        "__repr__": __repr__, "__module__": func.__module__, **class_attrs,
    })
    if issubclass(cls, PreAggregator):
        return register_pre_aggregator(cls)
    return register_aggregator(cls)


def register_aggregator(cls: type[Aggregator]) -> type[Aggregator]:
    AGGREGATORS[cls.name] = cls
    return cls


def register_pre_aggregator(cls: type[PreAggregator]) -> type[PreAggregator]:
    PRE_AGGREGATORS[cls.name] = cls
    return cls
