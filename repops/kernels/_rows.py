"""Layout plumbing for the reduction kernels: bring the reduced dims last (SPEC C3).

Kernels see a C-contiguous 2-D array ``(rows, n)`` whose rows are the independent outputs and
whose columns are the reduced elements in logical row-major order. :func:`rows_last` builds
that array with exact torch operations only (permute, widening conversion, contiguous copy), so
layouts — transposes, strides, offsets — change no bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from repops._tensor import compute_dtype
from repops.errors import UnsupportedInputError


def normalize_dims(dim: int | Sequence[int] | None, ndim: int, what: str = "dim") -> list[int]:
    """Sorted, de-duplicated non-negative dims; ``None`` or ``[]`` means every dim (torch's rule).

    A 0-d tensor accepts dim 0 / -1 (torch treats it as a one-element dim).
    """
    if dim is None:
        return list(range(ndim))
    dims = [dim] if isinstance(dim, int) else list(dim)
    if not dims:
        return list(range(ndim))
    rank = max(ndim, 1)
    out: list[int] = []
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool):
            raise ValueError(f"{what} must be an int or a list of ints, got {d!r}")
        if not -rank <= d < rank:
            raise ValueError(f"{what} {d} is out of range for a tensor with {ndim} dims")
        nd = d % rank
        if nd in out:
            raise ValueError(f"{what} {d} appears more than once in {dims}")
        out.append(nd)
    return sorted(d for d in out if d < ndim) if ndim > 0 else []


def normalize_dim(dim: int, ndim: int, what: str = "dim") -> int:
    """One dim as a non-negative index (a 0-d tensor has one implicit dim)."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise ValueError(f"{what} must be an int, got {dim!r}")
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise ValueError(f"{what} {dim} is out of range for a tensor with {ndim} dims")
    return dim % rank


def float_compute(t: torch.Tensor, name: str = "input") -> torch.dtype:
    """The compute dtype (C1) of a floating tensor; a clear error for anything else."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise UnsupportedInputError(
            f"{name}: the numba backend runs on CPU tensors, got {t.device}"
        )
    if not t.dtype.is_floating_point:
        raise UnsupportedInputError(
            f"{name} must be float16/bfloat16/float32/float64, got {t.dtype}"
        )
    return compute_dtype(t.dtype)


def rows_last(
    t: torch.Tensor, reduce_dims: Sequence[int], dtype: torch.dtype
) -> tuple[np.ndarray, list[int]]:
    """A C-contiguous ``(rows, n)`` numpy array of ``t`` in ``dtype`` with ``reduce_dims`` last.

    Kept dims stay in their order (they index the rows), reduced dims follow in increasing
    order, so each row lists its elements in logical row-major order (C3). Only exact
    operations are used: a permute, a widening conversion and a copy.
    Returns the array and the sizes of the kept dims.
    """
    keep = [d for d in range(t.dim()) if d not in reduce_dims]
    perm = keep + list(reduce_dims)
    kept_sizes = [t.shape[d] for d in keep]
    n = 1
    for d in reduce_dims:
        n *= t.shape[d]
    rows = 1
    for s in kept_sizes:
        rows *= s
    p = t.detach().permute(perm) if t.dim() > 0 else t.detach()
    arr = p.to(dtype).contiguous().reshape(rows, n).numpy()
    return arr, kept_sizes


def out_shape(t: torch.Tensor, reduce_dims: Sequence[int], keepdim: bool) -> list[int]:
    """The result shape of a reduction over ``reduce_dims`` (torch's keepdim rule)."""
    if keepdim:
        return [1 if d in reduce_dims else s for d, s in enumerate(t.shape)]
    return [s for d, s in enumerate(t.shape) if d not in reduce_dims]


def move_dim_last(t: torch.Tensor, dim: int, dtype: torch.dtype) -> np.ndarray:
    """``t`` with ``dim`` moved last, widened to ``dtype``, as a C-contiguous (rows, n) array.

    A 0-d tensor is one row of one element (torch treats it as a one-element dim).
    """
    if t.dim() == 0:
        return t.detach().to(dtype).reshape(1, 1).numpy()
    arr, _ = rows_last(t, [dim], dtype)
    return arr


def restore_dim(a: np.ndarray, shape: Sequence[int], dim: int, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`move_dim_last`: a contiguous tensor of ``shape`` rounded once to dtype."""
    ndim = len(shape)
    if ndim == 0:
        return torch.from_numpy(a).reshape(()).to(dtype)
    perm_shape = [s for d, s in enumerate(shape) if d != dim] + [shape[dim]]
    t = torch.from_numpy(a).reshape(perm_shape)
    if dim != ndim - 1:
        inv = [*range(dim), ndim - 1, *range(dim, ndim - 1)]
        t = t.permute(inv)
    t = t.to(dtype)
    return t.contiguous()
