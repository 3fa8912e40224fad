"""Where each aten overload goes: a repops kernel, the vendor kernel (exact ops), repops.rng,
the foreach splitter, or the strict-mode refusal. Computed once per overload and cached.

Order of the decision (spec/dispatch.md section 1):
0. profiler bookkeeping ops -> run as they are, not traced (they compute nothing).
1. ``_foreach_*``  -> split per tensor (:mod:`repops.dispatch.foreach`).
2. random ops      -> repops.rng with the mode's stream (:mod:`repops.dispatch.random_ops`).
3. a registered repops kernel for the overload -> that kernel, except in the exact case of a
   conditionally exact op (``add.Tensor`` with alpha == 1 runs the vendor op). An in-place
   (``add_``) or ``out=`` overload whose functional overload has a kernel runs that kernel,
   then an exact copy into the destination.
4. the exact-op list (:mod:`repops.dispatch.exact_ops`) -> the vendor kernel, after checking
   the list's argument predicate (e.g. alpha == 1).
5. anything else -> the integer rule (no floating tensor read or written: exact), else refusal.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from repops.dispatch import exact_ops
from repops.dispatch.registry import in_place_case_for, kernel_table, plain_case_for

#: Packets (in-place underscore removed) that draw random numbers.
RANDOM_PACKETS: frozenset[str] = frozenset(
    {
        "bernoulli", "native_dropout", "uniform", "normal", "rand", "randn", "randint",
        "randperm", "rand_like", "randn_like", "randint_like", "random", "exponential",
        "cauchy", "log_normal", "geometric", "multinomial", "poisson", "_fused_dropout",
        "rrelu_with_noise", "_standard_gamma", "binomial", "_sample_dirichlet",
    }
)  # fmt: skip


#: Namespaces of bookkeeping ops that compute nothing (profiler ranges; ``prim.device`` and
#: other metadata queries a FakeTensor answers through dispatch): run, never traced.
PASSTHROUGH_NAMESPACES: frozenset[str] = frozenset({"profiler", "prim"})


class RouteKind(enum.Enum):
    """How an overload is executed."""

    PASSTHROUGH = "passthrough"
    FOREACH = "foreach"
    RANDOM = "random"
    KERNEL = "kernel"
    KERNEL_INPLACE = "kernel_inplace"
    KERNEL_OUT = "kernel_out"
    EXACT = "exact"
    UNLISTED = "unlisted"


@dataclass(frozen=True)
class Route:
    """The cached routing decision for one overload."""

    kind: RouteKind
    name: str
    kernel: Callable[..., Any] | None = None
    predicate: Callable[[Sequence[Any], Mapping[str, Any]], bool] | None = None
    out_names: tuple[str, ...] = ()
    integer_rule: bool = False
    zero_fill: bool = False
    exact_case: Callable[[Sequence[Any], Mapping[str, Any]], bool] | None = None
    #: The kernel's shortcut for its common case (positional arguments; None: not that case).
    plain: Callable[[tuple[Any, ...]], Any] | None = None
    #: For KERNEL_INPLACE: the functional kernel's shortcut that writes into ``args[0]``.
    in_place: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None


_routes: dict[torch._ops.OpOverload, Route] = {}


_Twin = tuple[RouteKind, Callable[..., Any], tuple[str, ...], torch._ops.OpOverload]


def _functional_twin(
    func: torch._ops.OpOverload, table: Mapping[torch._ops.OpOverload, Callable[..., Any]]
) -> _Twin | None:
    """A kernel for the functional form of an in-place or out= overload, if one exists (with
    the route kind, the out= argument names and the functional overload)."""
    schema = func._schema
    packet = func.overloadpacket.__name__
    out_args = tuple(a.name for a in schema.arguments if a.kwarg_only and a.alias_info is not None)
    if out_args:
        names = [a.name for a in schema.arguments if a.name not in out_args]
        for overload_name in func.overloadpacket.overloads():
            cand = getattr(func.overloadpacket, overload_name)
            if (
                cand in table
                and not cand._schema.is_mutable
                and [a.name for a in cand._schema.arguments] == names
            ):
                return RouteKind.KERNEL_OUT, table[cand], out_args, cand
        return None
    if packet.endswith("_") and not packet.endswith("__"):
        functional = getattr(torch.ops.aten, packet[:-1], None)
        if functional is None:
            return None
        cand = getattr(functional, func._overloadname, None)
        if (
            cand is not None
            and cand in table
            and [a.name for a in cand._schema.arguments] == [a.name for a in schema.arguments]
        ):
            return RouteKind.KERNEL_INPLACE, table[cand], (), cand
    return None


def route_for(func: torch._ops.OpOverload) -> Route:
    """The routing decision for ``func`` (cached)."""
    route = _routes.get(func)
    if route is not None:
        return route
    name = str(func)
    packet = exact_ops.packet_name(func)
    table = kernel_table()
    if func.namespace in PASSTHROUGH_NAMESPACES:
        route = Route(RouteKind.PASSTHROUGH, name)
    elif func.overloadpacket.__name__.startswith("_foreach_"):
        route = Route(RouteKind.FOREACH, name)
    elif func.namespace == "aten" and packet in RANDOM_PACKETS:
        route = Route(RouteKind.RANDOM, name)
    else:
        listed, predicate = exact_ops.exactness(func)
        # add/sub with alpha == 1 etc.: the exact case runs the vendor op even when a kernel
        # exists for the general case (same bits by IEEE; faster, covers every dtype).
        exact_case = predicate if listed else None
        twin: _Twin | None = None
        if func in table:
            twin = (RouteKind.KERNEL, table[func], (), func)
        elif func.namespace == "aten":
            twin = _functional_twin(func, table)
        if twin is not None:
            kind, kernel, out_names, functional = twin
            route = Route(
                kind, name, kernel=kernel, out_names=out_names, integer_rule=True,
                exact_case=exact_case,
                plain=plain_case_for(func) if kind is RouteKind.KERNEL else None,
                in_place=in_place_case_for(functional)
                if kind is RouteKind.KERNEL_INPLACE else None,
            )
        elif listed:
            zero_fill = packet in exact_ops.UNINITIALISED
            route = Route(
                RouteKind.EXACT, name, predicate=predicate, integer_rule=True,
                zero_fill=zero_fill,
            )
        else:
            route = Route(
                RouteKind.UNLISTED, name, integer_rule=exact_ops.integer_rule_applies(func)
            )
    _routes[func] = route
    return route


def clear_route_cache() -> None:
    """Forget cached routes (after the kernel table changed, e.g. in tests)."""
    _routes.clear()
