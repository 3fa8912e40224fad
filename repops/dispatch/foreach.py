"""``_foreach_*`` ops split into one aten op per tensor, each routed (and traced) on its own.

torch.optim's foreach paths and ``clip_grad_norm_`` call multi-tensor kernels whose vendor
implementations may fuse arithmetic differently from the single-tensor ones (and are not
listed anywhere in SPEC.md). Splitting ``_foreach_add_.List(xs, ys, alpha=a)`` into
``add_.Tensor(xs[i], ys[i], alpha=a)`` for i in order makes each element's arithmetic that of
the per-tensor op, which is then an exact op or a repops kernel like any other; the trace gets
one node per tensor. The per-tensor overload is found from the schemas: list arguments
(``Tensor[]``, ``Scalar[]``) become their element type, every other argument is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import torch

from repops.errors import UnsupportedOpError

aten = torch.ops.aten

_LIST_TYPES = {
    "List[Tensor]": "Tensor",
    "List[number]": "number",
    "List[Optional[Tensor]]": "Tensor",
}


def _arg_type(t: str) -> str:
    return _LIST_TYPES.get(t, t)


@cache
def per_tensor_overload(func: torch._ops.OpOverload) -> torch._ops.OpOverload:
    """The single-tensor overload a ``_foreach_*`` overload applies to each tensor."""
    name = str(func)
    packet = func.overloadpacket.__name__
    base = packet.removeprefix("_foreach_")
    if base == "norm":
        return aten.linalg_vector_norm.default
    fargs = func._schema.arguments
    if any(a.alias_info is not None and a.kwarg_only for a in fargs):
        raise UnsupportedOpError(name, "out= variants of foreach ops are not split")
    target_packet = getattr(aten, base, None)
    if target_packet is None:
        raise UnsupportedOpError(name, f"no single-tensor op aten.{base} to split it into")
    for overload_name in target_packet.overloads():
        candidate: torch._ops.OpOverload = getattr(target_packet, overload_name)
        targs = candidate._schema.arguments
        if any(a.kwarg_only and a.alias_info is not None for a in targs):
            continue  # an out= overload
        if len(targs) < len(fargs):
            continue
        if any(_arg_type(str(f.type)) != str(t.type) for f, t in zip(fargs, targs, strict=False)):
            continue
        if any(not t.has_default_value() for t in targs[len(fargs):]):
            continue
        return candidate
    raise UnsupportedOpError(name, f"no overload of aten.{base} matches its per-tensor arguments")


def run_foreach(
    dispatch: Callable[[torch._ops.OpOverload, tuple[Any, ...], dict[str, Any]], Any],
    func: torch._ops.OpOverload,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    """Run ``func`` as per-tensor ops through ``dispatch`` (the mode's router), in list order."""
    target = per_tensor_overload(func)
    schema_args = func._schema.arguments
    values: list[Any] = list(args) + [
        kwargs.get(a.name, a.default_value if a.has_default_value() else None)
        for a in schema_args[len(args):]
    ]
    lists = [i for i, a in enumerate(schema_args) if str(a.type).startswith("List[")]
    n = len(values[lists[0]])
    for i in lists:
        if values[i] is not None and len(values[i]) != n:
            raise ValueError(
                f"{func}: argument '{schema_args[i].name}' has {len(values[i])} entries, "
                f"expected {n}"
            )
    results = []
    for k in range(n):
        per = [v[k] if i in lists and v is not None else v for i, v in enumerate(values)]
        if target is aten.linalg_vector_norm.default:
            # _foreach_norm.Scalar(self, ord, dtype) -> linalg_vector_norm(x, ord, None, False)
            call_args: tuple[Any, ...] = (per[0], per[1], None, False)
            call_kwargs: dict[str, Any] = {"dtype": per[2]}
        else:
            targs = target._schema.arguments
            call_args = tuple(v for v, a in zip(per, targs, strict=False) if not a.kwarg_only)
            call_kwargs = {
                a.name: v for v, a in zip(per, targs, strict=False) if a.kwarg_only
            }
        results.append(dispatch(target, call_args, call_kwargs))
    if not func._schema.returns:
        return None
    return results
