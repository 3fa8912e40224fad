"""max / min / argmax / argmin / amax / amin (spec/reductions.md §9).

Why a kernel at all, when the maximum of a set does not depend on the order: the *index* does
(ties), and so do the bits of the value when ``-0.0`` and ``+0.0`` tie or several NaNs are
present. The spec fixes both: the first index (in logical row-major order of the reduced dims)
that is a NaN, else the first index holding the maximum; the value is the element at that index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numba
import numpy as np
import torch

from repops.errors import UnsupportedInputError
from repops.kernels._rows import (
    narrow,
    normalize_dim,
    normalize_dims,
    out_shape,
    row_kernel,
    rows_last,
)


@row_kernel
def _select_rows(
    x: np.ndarray, largest: bool, idx: np.ndarray, val: np.ndarray
) -> None:  # pragma: no cover - compiled
    for i in numba.prange(x.shape[0]):
        k = 0
        best = x[i, 0]
        for j in range(1, x.shape[1]):
            if np.isnan(best):  # a NaN was selected: the first NaN wins
                break
            v = x[i, j]
            if np.isnan(v) or (largest and v > best) or (not largest and v < best):
                k = j
                best = v
        idx[i] = k
        val[i] = best


def _work_dtype(t: torch.Tensor, op: str) -> torch.dtype:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{op}: self must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise UnsupportedInputError(f"{op}: the numba backend runs on CPU tensors, got {t.device}")
    if t.dtype.is_complex:
        raise UnsupportedInputError(f"{op}: complex dtype {t.dtype} has no ordering")
    if t.dtype.is_floating_point:
        return torch.float64 if t.dtype == torch.float64 else torch.float32
    if t.dtype == torch.uint64:
        raise UnsupportedInputError(f"{op}: dtype {t.dtype} is not supported")
    return torch.int64  # every other integer dtype and bool widen exactly


def _select(
    self: torch.Tensor, dims: list[int], keepdim: bool, largest: bool, op: str
) -> tuple[torch.Tensor, torch.Tensor]:
    wt = _work_dtype(self, op)
    arr, _ = rows_last(self, dims, wt)
    rows, n = arr.shape
    if n == 0:
        raise ValueError(
            f"{op}: cannot reduce over an empty dimension (input shape {list(self.shape)})"
        )
    idx = np.empty(rows, dtype=np.int64)
    val = np.empty(rows, dtype=arr.dtype)
    _select_rows(arr, largest, idx, val)
    shape = out_shape(self, dims, keepdim)
    values = narrow(val, self.dtype).reshape(shape)
    return values, torch.from_numpy(idx).reshape(shape)


def max_dim(
    self: torch.Tensor, dim: int, keepdim: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """aten.max.dim: (values, indices); first NaN, else first maximal index."""
    _work_dtype(self, "max")
    d = normalize_dim(dim, self.dim())
    return _select(self, [d] if self.dim() else [], keepdim, True, "max")


def min_dim(
    self: torch.Tensor, dim: int, keepdim: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """aten.min.dim: (values, indices); first NaN, else first minimal index."""
    _work_dtype(self, "min")
    d = normalize_dim(dim, self.dim())
    return _select(self, [d] if self.dim() else [], keepdim, False, "min")


def max_all(self: torch.Tensor) -> torch.Tensor:
    """aten.max.default: the element at the first NaN / first maximum over all elements."""
    _work_dtype(self, "max")
    return _select(self, normalize_dims(None, self.dim()), False, True, "max")[0]


def min_all(self: torch.Tensor) -> torch.Tensor:
    """aten.min.default."""
    _work_dtype(self, "min")
    return _select(self, normalize_dims(None, self.dim()), False, False, "min")[0]


def _arg(
    self: torch.Tensor, dim: int | None, keepdim: bool, largest: bool, op: str
) -> torch.Tensor:
    _work_dtype(self, op)
    if dim is None:
        flat = self.reshape(-1)
        idx = _select(flat, [0], False, largest, op)[1]
        return idx.reshape([1] * self.dim()) if keepdim else idx
    d = normalize_dim(dim, self.dim())
    return _select(self, [d] if self.dim() else [], keepdim, largest, op)[1]


def argmax(self: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """aten.argmax.default: first NaN, else first maximal index (flattened when dim is None)."""
    return _arg(self, dim, keepdim, True, "argmax")


def argmin(self: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """aten.argmin.default."""
    return _arg(self, dim, keepdim, False, "argmin")


def amax(self: torch.Tensor, dim: int | Sequence[int] = (), keepdim: bool = False) -> torch.Tensor:
    """aten.amax.default: max over ``dim`` (all dims when empty), the selected element's bits."""
    _work_dtype(self, "amax")
    return _select(self, normalize_dims(dim, self.dim()), keepdim, True, "amax")[0]


def amin(self: torch.Tensor, dim: int | Sequence[int] = (), keepdim: bool = False) -> torch.Tensor:
    """aten.amin.default."""
    _work_dtype(self, "amin")
    return _select(self, normalize_dims(dim, self.dim()), keepdim, False, "amin")[0]


ATEN_KERNELS: dict[str, Callable[..., object]] = {
    "aten.max.dim": max_dim,
    "aten.min.dim": min_dim,
    "aten.max.default": max_all,
    "aten.min.default": min_all,
    "aten.argmax.default": argmax,
    "aten.argmin.default": argmin,
    "aten.amax.default": amax,
    "aten.amin.default": amin,
}
