"""Layout plumbing for the reduction kernels: bring the reduced dims last (SPEC C3).

Kernels see a C-contiguous 2-D array ``(rows, n)`` whose rows are the independent outputs and
whose columns are the reduced elements in logical row-major order. :func:`rows_last` builds
that array with exact torch operations only (permute, widening conversion, contiguous copy), so
layouts — transposes, strides, offsets — change no bit.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
import torch

from repops._numba import jit, pjit
from repops._tensor import compute_dtype
from repops.errors import UnsupportedInputError

#: bfloat16 is the top half of binary32, so widening is a 16-bit shift; torch's own bf16 -> f32
#: conversion is far slower than memory speed on some CPUs, so repops does both directions
#: itself. Narrowing is round-to-nearest-even on the bits, NaN -> 0x7FC0 (torch's c10 rule).
BF16_QNAN = 0x7FC0


@pjit
def _bf16_widen(src: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    # src: uint16 bf16 patterns; out: uint32 binary32 patterns (views are taken in Python).
    for i in numba.prange(src.shape[0]):
        out[i] = np.uint32(src[i]) << np.uint32(16)


@jit
def _bf16_widen_serial(src: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    for i in range(src.shape[0]):
        out[i] = np.uint32(src[i]) << np.uint32(16)


@jit
def _bf16_round(u: np.uint32) -> np.uint16:  # pragma: no cover - compiled
    """binary32 pattern -> bfloat16 pattern, round to nearest even; NaN -> 0x7FC0."""
    if (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):
        return np.uint16(BF16_QNAN)
    lsb = (u >> np.uint32(16)) & np.uint32(1)
    return np.uint16((u + np.uint32(0x7FFF) + lsb) >> np.uint32(16))


@pjit
def _bf16_narrow(src: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in numba.prange(src.shape[0]):
        out[i] = _bf16_round(src[i])


@jit
def _bf16_narrow_serial(src: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    for i in range(src.shape[0]):
        out[i] = _bf16_round(src[i])


#: Below this many input elements kernels run on the calling thread: waking the thread pool
#: costs more than the work (on a busy machine, milliseconds). Which path runs never changes a
#: bit — a row is always reduced by one thread in the spec's order — and tests set this to 0 to
#: drive the parallel path with small shapes.
PARALLEL_MIN = 1 << 15


class RowKernel:
    """A kernel compiled twice from one source: ``pjit`` (prange over rows, or over independent
    output elements) and serial ``jit``.

    The serial twin is a renamed copy of the function, because numba's on-disk cache is keyed by
    the function's name and bytecode, not by its compile flags.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        twin = types.FunctionType(
            fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__, fn.__closure__
        )
        twin.__qualname__ = fn.__qualname__ + "_serial"
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.parallel = pjit(fn)
        self.serial = jit(twin)

    def __call__(self, *args: Any) -> Any:
        """Run on the thread pool when the largest array argument is large enough."""
        size = max((a.size for a in args if isinstance(a, np.ndarray)), default=0)
        return (self.parallel if size >= PARALLEL_MIN else self.serial)(*args)


def row_kernel(fn: Callable[..., Any]) -> RowKernel:
    """Decorator: a :class:`RowKernel` (use ``numba.prange`` over independent rows only)."""
    return RowKernel(fn)


def widen(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """A C-contiguous numpy array of ``t`` converted to ``dtype`` (exact widening; may copy)."""
    if t.dtype == torch.bfloat16 and dtype == torch.float32:
        src = t.detach().contiguous().reshape(-1).view(torch.int16).numpy().view(np.uint16)
        out = np.empty(src.shape[0], dtype=np.uint32)
        if src.shape[0] >= PARALLEL_MIN:
            _bf16_widen(src, out)
        elif src.shape[0]:
            _bf16_widen_serial(src, out)
        return out.view(np.float32).reshape(tuple(t.shape))
    return t.detach().to(dtype).contiguous().numpy()


def narrow(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A torch tensor of ``dtype`` from a compute array: the one rounding of C1 (RNE)."""
    if dtype == torch.bfloat16 and a.dtype == np.float32:
        src = np.ascontiguousarray(a).reshape(-1).view(np.uint32)
        out = np.empty(src.shape[0], dtype=np.uint16)
        if src.shape[0] >= PARALLEL_MIN:
            _bf16_narrow(src, out)
        elif src.shape[0]:
            _bf16_narrow_serial(src, out)
        return torch.from_numpy(out.view(np.int16)).view(torch.bfloat16).reshape(a.shape)
    t = torch.from_numpy(a if a.flags.c_contiguous else np.ascontiguousarray(a))
    return t if t.dtype == dtype else t.to(dtype)


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
    return widen(p, dtype).reshape(rows, n), kept_sizes


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
        return widen(t, dtype).reshape(1, 1)
    arr, _ = rows_last(t, [dim], dtype)
    return arr


def restore_dim(a: np.ndarray, shape: Sequence[int], dim: int, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`move_dim_last`: a contiguous tensor of ``shape`` rounded once to dtype."""
    ndim = len(shape)
    if ndim == 0:
        return narrow(a, dtype).reshape(())
    perm_shape = [s for d, s in enumerate(shape) if d != dim] + [shape[dim]]
    t = narrow(a, dtype).reshape(perm_shape)
    if dim != ndim - 1:
        inv = [*range(dim), ndim - 1, *range(dim, ndim - 1)]
        t = t.permute(inv).contiguous()
    return t
