"""``repops.tracing(tracer)``: record the op graph of plain torch, without repops kernels.

Why: a program whose ops repops does not cover yet can still be traced -- every op recorded
exactly as :func:`repops.reproducible` records it, with the same tensor identities, kept
values and encodings -- while each op runs on the vendor kernel torch picks. Such a record is
only reproducible where the vendor kernels are (one machine and software stack, deterministic
algorithms, one thread); verde uses it for jobs that ask for ``backend = "torch"``.

Two things stay repops' own even here, because a recomputation elsewhere must give the same
bits: random ops draw from the mode's Philox stream (``seed``; without one they are refused),
and uninitialised factories (``empty``...) are zero-filled, so their digests are defined.
Foreach ops are split per tensor, as in the reproducible mode. :func:`repops.execute_node`
with ``vendor=True`` recomputes a node recorded here.
"""

from __future__ import annotations

from typing import Any

import torch

from repops.dispatch.mode import ReproducibleMode
from repops.dispatch.routing import Route, RouteKind
from repops.dispatch.trace import Tracer, is_structure_only


class TracingMode(ReproducibleMode):
    """The mode behind :func:`tracing`: vendor kernels, repops' random streams, a tracer."""

    uses_repops_kernels = False

    def _execute(
        self, route: Route, func: torch._ops.OpOverload, args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        return run_vendor(route, func, args, kwargs)


def run_vendor(
    route: Route, func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Run ``func`` on its vendor kernel, zero-filling the output of uninitialised factories."""
    result = func(*args, **kwargs)
    if (route.kind is RouteKind.EXACT and route.zero_fill and isinstance(result, torch.Tensor)
            and not is_structure_only(result)):
        result.zero_()
    return result


def tracing(tracer: Tracer | None = None, seed: Any = None) -> TracingMode:
    """``with repops.tracing(tracer, seed=None): ...`` -- record plain torch's ops.

    ``tracer`` records every op (see :class:`repops.Tracer`); ``seed`` (an int or a
    ``repops.rng.PhiloxStream``) is the stream random ops draw from. Entering it inside an
    active ``repops.reproducible()`` block raises ``NestedModeError``.
    """
    return TracingMode(strict=True, tracer=tracer, seed=seed)
