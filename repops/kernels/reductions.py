"""Sum, mean, variance / standard deviation and vector norms (spec/reductions.md §2–§4).

Why these shapes: every output element is one row of a ``(rows, n)`` array (reduced dims last,
logical row-major, C3) reduced by one thread in the order of the spec: LSUM (C4) for sums,
LDOT for sums of squares. ``prange`` only runs across rows, so thread count, batch size and
row position never change a bit. Each public function has the exact signature of the aten
overload it implements (see ``ATEN_KERNELS``) so the dispatch table calls it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numba
import numpy as np
import torch

from repops.errors import UnsupportedInputError
from repops.kernels._lanes import LANES, lane_abs_sum, lane_dev_sq, lane_dot, lane_sum, tree16
from repops.kernels._rows import (
    float_compute,
    narrow,
    normalize_dims,
    out_shape,
    row_kernel,
    rows_last,
    widen,
)
from repops.math._bits import ieee_div

# ----------------------------------------------------------------------------- kernels


@row_kernel
def _sum_rows(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in numba.prange(x.shape[0]):
        out[i] = lane_sum(x[i])


#: Columns per work item of :func:`_sum_columns` (16 lanes x 64 columns of accumulators).
COLUMN_BLOCK = 64


@row_kernel
def _sum_columns(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[j] = LSUM(x[0, j], x[1, j], ...)`` for a C-contiguous (R, N) array: the rows of
    the reduction run down the columns (reducing leading dims, as a bias gradient does).

    Same lanes and tree as :func:`lane_sum` (element i goes to lane i mod 16, lanes start at
    -0.0, a short tail leaves the other lanes untouched), but the lanes of a block of columns
    are kept side by side and x is read once, row by row, so the adds vectorise across
    columns and no transposed copy is made.
    """
    nrow, ncol = x.shape
    for jb in numba.prange((ncol + COLUMN_BLOCK - 1) // COLUMN_BLOCK):
        j0 = jb * COLUMN_BLOCK
        w = min(COLUMN_BLOCK, ncol - j0)
        acc = np.full((LANES, COLUMN_BLOCK), -0.0, dtype=x.dtype)
        for i in range(nrow):
            lane = acc[i % LANES]
            row = x[i, j0:j0 + w]
            for jj in range(w):
                lane[jj] += row[jj]
        for jj in range(w):
            out[j0 + jj] = tree16(
                acc[0, jj], acc[1, jj], acc[2, jj], acc[3, jj], acc[4, jj], acc[5, jj],
                acc[6, jj], acc[7, jj], acc[8, jj], acc[9, jj], acc[10, jj], acc[11, jj],
                acc[12, jj], acc[13, jj], acc[14, jj], acc[15, jj],
            )


@row_kernel
def _int_sum_rows(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    # Integer addition is associative (two's complement wrap-around): any order is exact.
    for i in numba.prange(x.shape[0]):
        s = np.int64(0)
        for j in range(x.shape[1]):
            s += x[i, j]
        out[i] = s


@row_kernel
def _mean_rows(x: np.ndarray, n_c: float, out: np.ndarray) -> None:  # pragma: no cover
    for i in numba.prange(x.shape[0]):
        out[i] = ieee_div(lane_sum(x[i]), n_c)


@row_kernel
def _var_rows(  # noqa: PLR0917 - fixed positional signature
    x: np.ndarray,
    n_c: float,
    div_c: float,
    take_sqrt: bool,
    var_out: np.ndarray,
    mean_out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    for i in numba.prange(x.shape[0]):
        m = ieee_div(lane_sum(x[i]), n_c)
        v = ieee_div(lane_dev_sq(x[i], m), div_c)
        if take_sqrt:
            v = np.sqrt(v)
        var_out[i] = v
        mean_out[i] = m


@row_kernel
def _norm2_rows(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in numba.prange(x.shape[0]):
        out[i] = np.sqrt(lane_dot(x[i], x[i]))


@row_kernel
def _norm1_rows(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in numba.prange(x.shape[0]):
        out[i] = lane_abs_sum(x[i])


@row_kernel
def _norm_inf_rows(x: np.ndarray, largest: bool, out: np.ndarray) -> None:  # pragma: no cover
    # max|x| (or min|x|): exact whatever the order; a NaN anywhere gives NaN.
    for i in numba.prange(x.shape[0]):
        best = abs(x[i, 0])
        for j in range(1, x.shape[1]):
            a = abs(x[i, j])
            if np.isnan(a) or np.isnan(best):
                best = a if np.isnan(a) else best
            elif (largest and a > best) or (not largest and a < best):
                best = a
        out[i] = best


@row_kernel
def _count_nonzero_rows(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    # ord=0: LSUM over (x_i != 0 ? 1 : 0); NaN counts as non-zero.
    for i in numba.prange(x.shape[0]):
        n = x.shape[1]
        one = x.dtype.type(1.0)
        zero = x.dtype.type(0.0)
        acc = np.full(16, -0.0, dtype=x.dtype)
        for j in range(n):
            acc[j % 16] += one if x[i, j] != 0 else zero
        out[i] = (
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        ) + (
            ((acc[8] + acc[9]) + (acc[10] + acc[11])) + ((acc[12] + acc[13]) + (acc[14] + acc[15]))
        )


# ----------------------------------------------------------------------------- helpers


def _as_input(self: torch.Tensor, dtype: torch.dtype | None, op: str) -> torch.Tensor:
    """Apply torch's ``dtype=`` argument (a conversion before the reduction, as torch does)."""
    if not isinstance(self, torch.Tensor):
        raise ValueError(f"{op}: self must be a torch.Tensor, got {type(self).__name__}")
    if dtype is not None and dtype != self.dtype:
        if self.dtype.is_complex or dtype.is_complex:
            raise UnsupportedInputError(f"{op}: complex dtypes are not supported (got {dtype})")
        return self.to(dtype)
    return self


def _finish(flat: np.ndarray, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    return narrow(flat, dtype).reshape(list(shape))


def _reduce(
    self: torch.Tensor,
    dim: int | Sequence[int] | None,
    keepdim: bool,
    op: str,
) -> tuple[np.ndarray, list[int], list[int], torch.dtype]:
    ct = float_compute(self, f"{op}: self")
    dims = normalize_dims(dim, self.dim())
    arr, _ = rows_last(self, dims, ct)
    return arr, dims, out_shape(self, dims, keepdim), ct


# ----------------------------------------------------------------------------- sum / mean


def sum_dim(
    self: torch.Tensor,
    dim: int | Sequence[int] | None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """aten.sum.dim_IntList: LSUM over ``dim`` (all dims for None / []); ints sum exactly."""
    x = _as_input(self, dtype, "sum")
    if x.dtype.is_complex:
        raise UnsupportedInputError(f"sum: complex dtype {x.dtype} is not supported")
    if not x.dtype.is_floating_point:
        dims = normalize_dims(dim, x.dim())
        arr, _ = rows_last(x, dims, torch.int64)
        out = np.empty(arr.shape[0], dtype=np.int64)
        _int_sum_rows(arr, out)
        return _finish(out, out_shape(x, dims, keepdim), torch.int64)
    dims = normalize_dims(dim, x.dim())
    lead = len(dims)
    if 0 < lead < x.dim() and dims == list(range(lead)):
        # Leading dims reduced: sum down the columns of the (R, N) view, no transposed copy.
        ct = float_compute(x, "sum: self")
        cols = widen(x, ct).reshape(math.prod(x.shape[:lead]), math.prod(x.shape[lead:]))
        out = np.empty(cols.shape[1], dtype=cols.dtype)
        _sum_columns(cols, out)
        return _finish(out, out_shape(x, dims, keepdim), x.dtype)
    arr, _, shape, _ = _reduce(x, dim, keepdim, "sum")
    out = np.empty(arr.shape[0], dtype=arr.dtype)
    _sum_rows(arr, out)
    return _finish(out, shape, x.dtype)


def sum_all(self: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """aten.sum.default: LSUM over every element in logical row-major order."""
    return sum_dim(self, None, False, dtype=dtype)


def mean_dim(
    self: torch.Tensor,
    dim: int | Sequence[int] | None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """aten.mean.dim: ``LSUM(x) / n`` (n rounded to the compute type, one IEEE division)."""
    x = _as_input(self, dtype, "mean")
    arr, _, shape, _ = _reduce(x, dim, keepdim, "mean")
    out = np.empty(arr.shape[0], dtype=arr.dtype)
    _mean_rows(arr, arr.dtype.type(arr.shape[1]), out)
    return _finish(out, shape, x.dtype)


def mean_all(self: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """aten.mean.default."""
    return mean_dim(self, None, False, dtype=dtype)


# ----------------------------------------------------------------------------- var / std


def _var_like(  # noqa: PLR0917 - fixed positional signature
    self: torch.Tensor,
    dim: int | Sequence[int] | None,
    correction: float | None,
    keepdim: bool,
    take_sqrt: bool,
    op: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    arr, _, shape, _ = _reduce(self, dim, keepdim, op)
    n = arr.shape[1]
    corr = 1.0 if correction is None else float(correction)
    if not math.isfinite(corr):
        raise ValueError(f"{op}: correction must be finite, got {correction!r}")
    ftype = arr.dtype.type
    var = np.empty(arr.shape[0], dtype=arr.dtype)
    mean = np.empty(arr.shape[0], dtype=arr.dtype)
    _var_rows(arr, ftype(n), ftype(max(n - corr, 0.0)), take_sqrt, var, mean)
    return _finish(var, shape, self.dtype), _finish(mean, shape, self.dtype)


def var_correction(
    self: torch.Tensor,
    dim: int | Sequence[int] | None = None,
    *,
    correction: float | None = None,
    keepdim: bool = False,
) -> torch.Tensor:
    """aten.var.correction: two-pass, ``LDOT(d, d) / max(n - correction, 0)``, d = x - mean."""
    return _var_like(self, dim, correction, keepdim, False, "var")[0]


def std_correction(
    self: torch.Tensor,
    dim: int | Sequence[int] | None = None,
    *,
    correction: float | None = None,
    keepdim: bool = False,
) -> torch.Tensor:
    """aten.std.correction: ``sqrt`` of :func:`var_correction` (one more IEEE rounding)."""
    return _var_like(self, dim, correction, keepdim, True, "std")[0]


def var_mean_correction(
    self: torch.Tensor,
    dim: int | Sequence[int] | None = None,
    *,
    correction: float | None = None,
    keepdim: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """aten.var_mean.correction: (var, mean), the same bits as var / mean separately."""
    return _var_like(self, dim, correction, keepdim, False, "var_mean")


def std_mean_correction(
    self: torch.Tensor,
    dim: int | Sequence[int] | None = None,
    *,
    correction: float | None = None,
    keepdim: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """aten.std_mean.correction: (std, mean)."""
    return _var_like(self, dim, correction, keepdim, True, "std_mean")


# ----------------------------------------------------------------------------- norms

SUPPORTED_ORDS = (2.0, 1.0, math.inf, -math.inf, 0.0)


def linalg_vector_norm(
    self: torch.Tensor,
    ord: float = 2,
    dim: int | Sequence[int] | None = None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """aten.linalg_vector_norm.default for ord 2 (sqrt(LDOT(x,x))), 1, inf, -inf and 0."""
    if isinstance(ord, bool) or not isinstance(ord, int | float):
        raise ValueError(f"linalg_vector_norm: ord must be a number, got {ord!r}")
    p = float(ord)
    if p not in SUPPORTED_ORDS:
        raise UnsupportedInputError(
            f"linalg_vector_norm: ord={ord!r} has no reproducible kernel (supported: 2, 1, inf, "
            "-inf, 0)"
        )
    x = _as_input(self, dtype, "linalg_vector_norm")
    arr, _, shape, _ = _reduce(x, dim, keepdim, "linalg_vector_norm")
    rows, n = arr.shape
    if n == 0 and math.isinf(p):
        raise ValueError("linalg_vector_norm: ord=±inf over an empty dimension is undefined")
    out = np.empty(rows, dtype=arr.dtype)
    if p == 2.0:
        _norm2_rows(arr, out)
    elif p == 1.0:
        _norm1_rows(arr, out)
    elif p == 0.0:
        _count_nonzero_rows(arr, out)
    else:
        _norm_inf_rows(arr, p > 0, out)
    return _finish(out, shape, x.dtype)


ATEN_KERNELS: dict[str, Callable[..., object]] = {
    "aten.sum.dim_IntList": sum_dim,
    "aten.sum.default": sum_all,
    "aten.mean.dim": mean_dim,
    "aten.mean.default": mean_all,
    "aten.var.correction": var_correction,
    "aten.std.correction": std_correction,
    "aten.var_mean.correction": var_mean_correction,
    "aten.std_mean.correction": std_mean_correction,
    "aten.linalg_vector_norm.default": linalg_vector_norm,
}
