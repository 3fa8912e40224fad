"""Re-execute one traced op: what verde's arbiter does with the first node two parties dispute.

The arbiter holds the node's record (overload name and encoded arguments) and the input
tensors, each checked against its digest; :func:`execute_node` recomputes the op exactly as
the reproducible mode ran it (same routing: repops kernel, exact vendor op, or repops.rng at
the recorded stream position) and returns the output tensors in the trace's output order, so
the caller digests them and compares with each party's claim.

Inputs are cloned first: an in-place op (``add_``, ``copy_``) must not overwrite tensors the
caller still needs, and the clone also gives the op the storage it would have had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from repops.dispatch.encoding import RefKey, decode_call
from repops.dispatch.mode import ReproducibleMode, op_outputs
from repops.dispatch.registry import resolve_overload
from repops.dispatch.routing import RouteKind, route_for
from repops.dispatch.tracing_mode import TracingMode
from repops.errors import UnsupportedOpError


def execute_node(
    op: str, args_tree: Mapping[str, Any], tensors: Mapping[RefKey, torch.Tensor], *,
    vendor: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Recompute one traced op from its record.

    ``op`` is the overload name (``"aten.mm.default"``), ``args_tree`` the node's ``args``,
    ``tensors`` maps each input ref (``("node", i, j)`` / ``("leaf", name)``, see
    :func:`repops.dispatch.encoding.ref_key`) to its tensor. Raises UnsupportedOpError for an op
    the strict mode would refuse, ValueError for a name that is not an aten overload.
    ``vendor=True`` recomputes a node recorded by :func:`repops.tracing` (the vendor kernel,
    with the same zero-filling and random streams).
    """
    func = resolve_overload(op)
    route = route_for(func)
    if route.kind is RouteKind.FOREACH:
        raise UnsupportedOpError(op, "foreach ops are traced as their per-tensor ops")
    inputs = {k: v.detach().clone() for k, v in tensors.items()}
    args, kwargs = decode_call(args_tree, inputs)
    mode = TracingMode(strict=True) if vendor else ReproducibleMode(strict=True)
    if route.kind is RouteKind.RANDOM:
        from repops.dispatch import random_ops

        rng_state = args_tree.get("rng")
        result, _ = random_ops.run_random(mode, func, args, kwargs, state=rng_state)
    else:
        with torch.no_grad():
            result = mode._execute(route, func, args, kwargs)
    return tuple(op_outputs(func, args, kwargs, result))
