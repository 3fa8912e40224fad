"""Give a repops kernel's outputs the strides the vendor kernel would have given them.

Why: values never depend on layout (SPEC.md C3), but *which ops run next* can. ``reshape``
is a view when strides allow it and a copy otherwise, autograd's AccumulateGrad steals a
gradient only if its strides match the parameter's, and user code may call ``.view()`` on an
attention output that the vendor returns in (B, T, H, D) memory order. If a kernel returned
a different layout, a real run would trace a different graph than the shape-only run verde's
arbiter derives (vendor meta kernels), and code that works without the mode could fail inside
it. So the mode asks the vendor's meta kernel for the output strides (cached per call
signature) and, where a kernel output differs, copies it (exactly) into that layout.
"""

from __future__ import annotations

from typing import Any

import torch

_cache: dict[tuple[Any, ...], tuple[tuple[int, ...] | None, ...] | None] = {}
_MAX_CACHE = 4096


def _key_of(values: Any) -> tuple[Any, ...]:
    """A hashable key of an argument sequence: tensors by (shape, strides, dtype)."""
    key: list[Any] = []
    for v in values:
        if isinstance(v, torch.Tensor):
            key.append((v.shape, v.stride(), v.dtype))
        elif isinstance(v, (list, tuple)):
            key.append(_key_of(v))
        elif isinstance(v, float):
            key.append(("f", v.hex()))
        else:
            key.append(v)
    return tuple(key)


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(
            tuple(value.shape), tuple(value.stride()), dtype=value.dtype, device="meta"
        )
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value)
    if isinstance(value, torch.device):
        return torch.device("meta")
    return value


def _flat(value: Any, out: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _flat(v, out)
    elif value is None:
        out.append(None)
    return out


def vendor_strides(
    func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[int, ...] | None, ...] | None:
    """The strides of each output the vendor kernel would return, or None if unknown."""
    key = (func, _key_of(args), _key_of(kwargs.values()), tuple(kwargs))
    try:
        return _cache[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable argument: do not cache
        key = None  # type: ignore[assignment]
    try:
        meta_out = func(*_to_meta(args), **{k: _to_meta(v) for k, v in kwargs.items()})
        strides: tuple[tuple[int, ...] | None, ...] | None = tuple(
            None if t is None else tuple(t.stride()) for t in _flat(meta_out, [])
        )
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        strides = None  # no meta kernel: keep the kernel's layout
    if key is not None:
        if len(_cache) >= _MAX_CACHE:
            _cache.clear()
        _cache[key] = strides
    return strides


def _restride(t: torch.Tensor, stride: tuple[int, ...]) -> torch.Tensor:
    if tuple(t.stride()) == stride or t.numel() <= 1 or len(stride) != t.dim():
        return t
    out = torch.empty_strided(tuple(t.shape), stride, dtype=t.dtype, device=t.device)
    out.copy_(t)
    return out


def match_vendor_layout(
    func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> Any:
    """``result`` with every output tensor in the vendor's layout (exact copies where needed)."""
    strides = vendor_strides(func, args, kwargs)
    if strides is None:
        return result
    if isinstance(result, torch.Tensor):
        return _restride(result, strides[0]) if len(strides) == 1 and strides[0] else result
    if isinstance(result, tuple) and len(result) == len(strides):
        return tuple(
            _restride(r, s) if isinstance(r, torch.Tensor) and s is not None else r
            for r, s in zip(result, strides, strict=True)
        )
    return result
