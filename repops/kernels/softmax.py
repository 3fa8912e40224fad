"""softmax, log_softmax, their backwards and logsumexp (spec/reductions.md §7).

Why this order: the maximum is exact in any order (only the sign of a zero maximum could
depend on it, so the spec canonicalises it with ``m + 0.0``); the sum of exponentials is LSUM
(C4); exp and log are repops' own binary32 functions (C7, ``repops.math``), so every backend
computes the same ``e_j``. One thread owns one row (one output slice along ``dim``).

float64 inputs are rejected: repops has binary32 exp/log only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numba
import numpy as np
import torch

from repops._numba import fma, jit
from repops.errors import UnsupportedInputError
from repops.kernels._buffers import reusable_empty_like
from repops.kernels._lanes import lane_dot, lane_sum
from repops.kernels._rows import (
    float_compute,
    move_dim_last,
    narrow,
    normalize_dim,
    normalize_dims,
    out_shape,
    restore_dim,
    row_kernel,
    rows_last,
)
from repops.math._bits import ieee_div
from repops.math.exp import exp_f32
from repops.math.log import log_f32

# ----------------------------------------------------------------------------- kernels


@jit
def row_max(x: np.ndarray) -> np.float32:  # pragma: no cover - compiled
    """Largest non-NaN value of the row (``-inf`` if none), a zero maximum as ``+0.0``.

    The maximum is exact in any order, so the lanes are free to differ from LSUM's; sixteen
    named accumulators (as in :mod:`repops.kernels._lanes`) keep them in registers, where
    SLP vectorisation packs ``max(s, v)`` (``v`` if ``v > s``: a NaN ``v`` is skipped) into
    vector max instructions. An accumulator array was loaded and stored every element:
    2^22 floats (16 MiB) took 1.6 ms; now 0.8 ms, the memory's speed.
    """
    n = x.shape[0]
    nb = n // 16
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(-np.inf)
    s8 = s9 = s10 = s11 = s12 = s13 = s14 = s15 = np.float32(-np.inf)
    for b in range(nb):
        i = b * 16
        s0 = max(s0, x[i + 0])
        s1 = max(s1, x[i + 1])
        s2 = max(s2, x[i + 2])
        s3 = max(s3, x[i + 3])
        s4 = max(s4, x[i + 4])
        s5 = max(s5, x[i + 5])
        s6 = max(s6, x[i + 6])
        s7 = max(s7, x[i + 7])
        s8 = max(s8, x[i + 8])
        s9 = max(s9, x[i + 9])
        s10 = max(s10, x[i + 10])
        s11 = max(s11, x[i + 11])
        s12 = max(s12, x[i + 12])
        s13 = max(s13, x[i + 13])
        s14 = max(s14, x[i + 14])
        s15 = max(s15, x[i + 15])
    for i in range(nb * 16, n):
        s0 = max(s0, x[i])
    # no accumulator holds a NaN, so the order of this combination cannot matter either
    m = max(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15)
    return m + np.float32(0.0)


@jit
def _exp_shift_sum(x: np.ndarray, m: np.float32, e: np.ndarray) -> np.float32:  # pragma: no cover
    """``e_j = exp(x_j - m)`` stored in ``e``; returns LSUM(e)."""
    n = x.shape[0]
    for j in range(n):
        e[j] = exp_f32(x[j] - m)
    return lane_sum(e)


@row_kernel
def _softmax_rows(x: np.ndarray, y: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in numba.prange(x.shape[0]):
        row = x[i]
        out = y[i]
        s = _exp_shift_sum(row, row_max(row), out)
        for j in range(row.shape[0]):
            out[j] = ieee_div(out[j], s)


@row_kernel
def _log_softmax_rows(x: np.ndarray, y: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in numba.prange(x.shape[0]):
        row = x[i]
        out = y[i]
        m = row_max(row)
        lg = log_f32(_exp_shift_sum(row, m, out))
        for j in range(row.shape[0]):
            out[j] = (row[j] - m) - lg


@row_kernel
def _logsumexp_rows(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.shape[1]
    for i in numba.prange(x.shape[0]):
        row = x[i]
        m = row_max(row)
        has_nan = False
        for j in range(n):
            if row[j] != row[j]:
                has_nan = True
        if has_nan:
            out[i] = np.float32(np.nan)
        elif m == np.float32(np.inf) or m == np.float32(-np.inf):
            out[i] = m
        else:
            e = np.empty(n, dtype=np.float32)
            out[i] = m + log_f32(_exp_shift_sum(row, m, e))


@row_kernel
def _softmax_backward_rows(
    g: np.ndarray, y: np.ndarray, gi: np.ndarray
) -> None:  # pragma: no cover
    for i in numba.prange(g.shape[0]):
        d = lane_dot(g[i], y[i])
        for j in range(g.shape[1]):
            gi[i, j] = y[i, j] * (g[i, j] - d)


@row_kernel
def _log_softmax_backward_rows(
    g: np.ndarray, y: np.ndarray, gi: np.ndarray
) -> None:  # pragma: no cover - compiled
    for i in numba.prange(g.shape[0]):
        s = lane_sum(g[i])
        for j in range(g.shape[1]):
            gi[i, j] = fma(-exp_f32(y[i, j]), s, g[i, j])


# ----------------------------------------------------------------------------- wrappers


def _f32(t: torch.Tensor, op: str, name: str) -> None:
    if float_compute(t, f"{op}: {name}") != torch.float32:
        raise UnsupportedInputError(
            f"{op}: {name} has dtype {t.dtype}; repops has binary32 exp/log only "
            "(float16/bfloat16/float32 inputs are supported)"
        )


def _out_dtype(self: torch.Tensor, half_to_float: bool, op: str) -> torch.dtype:
    if half_to_float:
        if self.dtype != torch.float16:
            raise ValueError(f"{op}: half_to_float=True needs a float16 input, got {self.dtype}")
        return torch.float32
    return self.dtype


def _forward(
    self: torch.Tensor, dim: int, half_to_float: bool, op: str, kernel: Callable
) -> torch.Tensor:
    _f32(self, op, "self")
    out_dtype = _out_dtype(self, half_to_float, op)
    d = normalize_dim(dim, self.dim())
    shape = list(self.shape)
    x = move_dim_last(self, d, torch.float32)
    y = reusable_empty_like(x)
    kernel(x, y)
    return restore_dim(y, shape, d, out_dtype)


def softmax(self: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    """aten._softmax.default: ``y_j = e_j / LSUM(e)``, ``e_j = exp(x_j - max)``."""
    return _forward(self, dim, half_to_float, "_softmax", _softmax_rows)


def log_softmax(self: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    """aten._log_softmax.default: ``y_j = (x_j - max) - log(LSUM(e))``."""
    return _forward(self, dim, half_to_float, "_log_softmax", _log_softmax_rows)


def _backward(  # noqa: PLR0917 - one helper for both backward ops
    grad_output: torch.Tensor,
    output: torch.Tensor,
    dim: int,
    input_dtype: torch.dtype,
    op: str,
    kernel: Callable,
) -> torch.Tensor:
    _f32(grad_output, op, "grad_output")
    _f32(output, op, "output")
    if grad_output.shape != output.shape:
        raise ValueError(
            f"{op}: grad_output shape {list(grad_output.shape)} differs from output shape "
            f"{list(output.shape)}"
        )
    if not isinstance(input_dtype, torch.dtype) or not input_dtype.is_floating_point:
        raise ValueError(f"{op}: input_dtype must be a floating torch.dtype, got {input_dtype!r}")
    d = normalize_dim(dim, output.dim())
    shape = list(output.shape)
    g = move_dim_last(grad_output, d, torch.float32)
    y = move_dim_last(output, d, torch.float32)
    gi = reusable_empty_like(g)
    kernel(g, y, gi)
    return restore_dim(gi, shape, d, input_dtype)


def softmax_backward_data(
    grad_output: torch.Tensor, output: torch.Tensor, dim: int, input_dtype: torch.dtype
) -> torch.Tensor:
    """aten._softmax_backward_data.default: ``gi_j = y_j * (g_j - LDOT(g, y))``."""
    return _backward(
        grad_output, output, dim, input_dtype, "_softmax_backward_data", _softmax_backward_rows
    )


def log_softmax_backward_data(
    grad_output: torch.Tensor, output: torch.Tensor, dim: int, input_dtype: torch.dtype
) -> torch.Tensor:
    """aten._log_softmax_backward_data.default: ``gi_j = fma(-exp(y_j), LSUM(g), g_j)``."""
    return _backward(
        grad_output,
        output,
        dim,
        input_dtype,
        "_log_softmax_backward_data",
        _log_softmax_backward_rows,
    )


def logsumexp(self: torch.Tensor, dim: Sequence[int] | int, keepdim: bool = False) -> torch.Tensor:
    """aten.logsumexp.default: ``m + log(LSUM(exp(x_j - m)))``; NaN if any NaN; ``m`` if ±inf."""
    _f32(self, "logsumexp", "self")
    dims = normalize_dims(dim, self.dim())
    x, _ = rows_last(self, dims, torch.float32)
    out = np.empty(x.shape[0], dtype=np.float32)
    _logsumexp_rows(x, out)
    return narrow(out, self.dtype).reshape(out_shape(self, dims, keepdim))


ATEN_KERNELS: dict[str, Callable[..., object]] = {
    "aten._softmax.default": softmax,
    "aten._log_softmax.default": log_softmax,
    "aten._softmax_backward_data.default": softmax_backward_data,
    "aten._log_softmax_backward_data.default": log_softmax_backward_data,
    "aten.logsumexp.default": logsumexp,
}
