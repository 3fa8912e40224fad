"""Layer norm and RMS norm, forward and backward (spec/reductions.md §5–§6).

Why here and not as a decomposition: a decomposed layer norm would round mean, variance and
normalised values to the storage dtype between ops; the fused kernel keeps them in binary32
(C1) and fixes each element's sequence of operations. ``rstd = 1 / sqrt(var + eps)`` is two
IEEE roundings (sqrt, then division) — never an approximate rsqrt instruction (C2).

Rows (the leading dims) are reduced independently by one thread each. The weight/bias
gradients are column sums over rows; they run in parallel over column blocks, and every column
is summed over rows in increasing row order with the 16 lanes of C4 (lane = row mod 16).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numba
import numpy as np
import torch

from repops._numba import fma, jit
from repops.kernels._buffers import reusable_empty_like
from repops.kernels._lanes import lane_dev_sq, lane_dot, lane_sum, lane_tree
from repops.kernels._rows import float_compute, narrow, row_kernel, widen
from repops.math._bits import ieee_div

COL_BLOCK = 256  # columns per parallel task in the weight/bias gradients (no effect on bits)

# ----------------------------------------------------------------------------- kernels


@row_kernel
def _layer_norm_rows(  # noqa: PLR0917 - fixed positional signature
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    eps: float,
    y: np.ndarray,
    mean: np.ndarray,
    rstd: np.ndarray,
) -> None:  # pragma: no cover - compiled
    n = x.shape[1]
    n_c = x.dtype.type(n)
    one = x.dtype.type(1.0)
    for i in numba.prange(x.shape[0]):
        row = x[i]
        mu = ieee_div(lane_sum(row), n_c)
        var = ieee_div(lane_dev_sq(row, mu), n_c)
        r = ieee_div(one, np.sqrt(var + eps))
        for j in range(n):
            y[i, j] = fma((row[j] - mu) * r, w[j], b[j])
        mean[i] = mu
        rstd[i] = r


@jit
def _ln_row_grad(  # noqa: PLR0917 - fixed positional signature
    g: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    mu: float,
    r: float,
    gw: np.ndarray,
    xhat: np.ndarray,
    out: np.ndarray,
    centred: bool,
) -> None:  # pragma: no cover - compiled
    n = x.shape[0]
    n_c = x.dtype.type(n)
    for j in range(n):
        gw[j] = g[j] * w[j]
        xhat[j] = ((x[j] - mu) * r) if centred else (x[j] * r)
    c1 = ieee_div(lane_sum(gw), n_c) if centred else x.dtype.type(0.0)
    c2 = ieee_div(lane_dot(gw, xhat), n_c)
    for j in range(n):
        inner = (gw[j] - c1) if centred else gw[j]
        out[j] = fma(-xhat[j], c2, inner) * r


@row_kernel
def _norm_backward_rows(  # noqa: PLR0917 - fixed positional signature
    g: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    mean: np.ndarray,
    rstd: np.ndarray,
    centred: bool,
    gi: np.ndarray,
) -> None:  # pragma: no cover - compiled
    n = x.shape[1]
    for i in numba.prange(x.shape[0]):
        gw = np.empty(n, dtype=x.dtype)
        xhat = np.empty(n, dtype=x.dtype)
        mu = mean[i] if centred else x.dtype.type(0.0)
        _ln_row_grad(g[i], x[i], w, mu, rstd[i], gw, xhat, gi[i], centred)


@row_kernel
def _norm_param_grads(  # noqa: PLR0917 - fixed positional signature
    g: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    rstd: np.ndarray,
    gweight: np.ndarray,
    gbias: np.ndarray,
) -> None:  # pragma: no cover - compiled
    # For RMS norm ``mean`` is all +0.0: ``x - (+0.0)`` is exactly ``x`` (also for -0.0).
    m, n = x.shape
    nblocks = (n + COL_BLOCK - 1) // COL_BLOCK
    for blk in numba.prange(nblocks):
        j0 = blk * COL_BLOCK
        j1 = min(n, j0 + COL_BLOCK)
        width = j1 - j0
        accw = np.full((16, width), -0.0, dtype=x.dtype)
        accb = np.full((16, width), -0.0, dtype=x.dtype)
        for i in range(m):
            aw = accw[i % 16]
            ab = accb[i % 16]
            xr = x[i, j0:j1]
            gr = g[i, j0:j1]
            mu = mean[i]
            r = rstd[i]
            for j in range(width):
                aw[j] = fma(gr[j], (xr[j] - mu) * r, aw[j])
                ab[j] = ab[j] + gr[j]
        for j in range(width):
            gweight[j0 + j] = lane_tree(accw[:, j])
            gbias[j0 + j] = lane_tree(accb[:, j])


@row_kernel
def _rms_norm_rows(
    x: np.ndarray, w: np.ndarray, eps: float, y: np.ndarray, rstd: np.ndarray
) -> None:  # pragma: no cover - compiled
    n = x.shape[1]
    n_c = x.dtype.type(n)
    one = x.dtype.type(1.0)
    for i in numba.prange(x.shape[0]):
        row = x[i]
        ms = ieee_div(lane_dot(row, row), n_c)
        r = ieee_div(one, np.sqrt(ms + eps))
        for j in range(n):
            y[i, j] = (row[j] * r) * w[j]
        rstd[i] = r


# ----------------------------------------------------------------------------- helpers


def _split(inp: torch.Tensor, normalized_shape: Sequence[int], op: str) -> tuple[int, int, int]:
    """(axis, rows M, row length N) for a norm over the trailing ``normalized_shape`` dims."""
    shape = [int(s) for s in normalized_shape]
    k = len(shape)
    if k == 0:
        raise ValueError(f"{op}: normalized_shape must name at least one dim")
    if k > inp.dim() or list(inp.shape[inp.dim() - k :]) != shape:
        raise ValueError(
            f"{op}: normalized_shape {shape} does not match the trailing dims of input "
            f"{list(inp.shape)}"
        )
    axis = inp.dim() - k
    return axis, math.prod(inp.shape[:axis]), math.prod(shape)


def _param(
    p: torch.Tensor | None, n: int, default: float, ct: torch.dtype, name: str
) -> np.ndarray:
    """A weight/bias as a flat compute array; an absent one is the neutral constant."""
    if p is None:
        return np.full(n, default, dtype=np.float64 if ct == torch.float64 else np.float32)
    float_compute(p, name)
    if p.numel() != n:
        raise ValueError(f"{name} has {p.numel()} elements, expected {n}")
    return widen(p, ct).reshape(n)


def _mat(t: torch.Tensor, m: int, n: int, ct: torch.dtype) -> np.ndarray:
    return widen(t, ct).reshape(m, n)


def _stats(t: torch.Tensor, m: int, ct: torch.dtype, name: str) -> np.ndarray:
    float_compute(t, name)
    if t.numel() != m:
        raise ValueError(f"{name} has {t.numel()} elements, expected one per row ({m})")
    return widen(t, ct).reshape(m)


def _backward_rows(  # noqa: PLR0917 - the shared head of both backward ops
    grad_out: torch.Tensor,
    input: torch.Tensor,
    normalized_shape: Sequence[int],
    output_mask: Sequence[bool],
    n_outputs: int,
    op: str,
) -> tuple[torch.dtype, int, int, np.ndarray, np.ndarray]:
    """Checks a norm backward's arguments; returns (compute dtype, rows m, row length n, x, g).

    One home for the checks layer norm and RMS norm backward share, so both name the same
    input in the same words.
    """
    ct = float_compute(input, f"{op}: input")
    float_compute(grad_out, f"{op}: grad_out")
    if grad_out.shape != input.shape:
        raise ValueError(
            f"{op}: grad_out shape {list(grad_out.shape)} != input shape {list(input.shape)}"
        )
    if len(output_mask) != n_outputs:
        raise ValueError(f"{op}: output_mask must have {n_outputs} entries, got {output_mask}")
    _, m, n = _split(input, normalized_shape, op)
    return ct, m, n, _mat(input, m, n, ct), _mat(grad_out, m, n, ct)


def _to(a: np.ndarray, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    return narrow(a, dtype).reshape(list(shape))


# ----------------------------------------------------------------------------- layer norm


def native_layer_norm(
    input: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """aten.native_layer_norm.default -> (out, mean, rstd); mean/rstd shaped ``[..., 1, ..1]``."""
    ct = float_compute(input, "native_layer_norm: input")
    axis, m, n = _split(input, normalized_shape, "native_layer_norm")
    x = _mat(input, m, n, ct)
    w = _param(weight, n, 1.0, ct, "native_layer_norm: weight")
    b = _param(bias, n, -0.0, ct, "native_layer_norm: bias")
    y = reusable_empty_like(x)
    mean = np.empty(m, dtype=x.dtype)
    rstd = np.empty(m, dtype=x.dtype)
    _layer_norm_rows(x, w, b, x.dtype.type(eps), y, mean, rstd)
    stat_shape = list(input.shape[:axis]) + [1] * (input.dim() - axis)
    return (
        _to(y, input.shape, input.dtype),
        _to(mean, stat_shape, input.dtype),
        _to(rstd, stat_shape, input.dtype),
    )


def native_layer_norm_backward(  # noqa: PLR0917 - fixed positional signature
    grad_out: torch.Tensor,
    input: torch.Tensor,
    normalized_shape: Sequence[int],
    mean: torch.Tensor,
    rstd: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    output_mask: Sequence[bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """aten.native_layer_norm_backward.default -> (grad_input, grad_weight, grad_bias).

    Uses the saved ``mean``/``rstd`` given as inputs (as torch does), widened to binary32.
    """
    ct, m, n, x, g = _backward_rows(
        grad_out, input, normalized_shape, output_mask, 3, "native_layer_norm_backward"
    )
    mu = _stats(mean, m, ct, "native_layer_norm_backward: mean")
    rs = _stats(rstd, m, ct, "native_layer_norm_backward: rstd")
    w = _param(weight, n, 1.0, ct, "native_layer_norm_backward: weight")
    gi_t = gw_t = gb_t = None
    if output_mask[0]:
        gi = reusable_empty_like(x)
        _norm_backward_rows(g, x, w, mu, rs, True, gi)
        gi_t = _to(gi, input.shape, input.dtype)
    if output_mask[1] or output_mask[2]:
        gwt = np.empty(n, dtype=x.dtype)
        gbs = np.empty(n, dtype=x.dtype)
        _norm_param_grads(g, x, mu, rs, gwt, gbs)
        if output_mask[1] and weight is not None:
            gw_t = _to(gwt, weight.shape, weight.dtype)
        if output_mask[2] and bias is not None:
            gb_t = _to(gbs, bias.shape, bias.dtype)
    return gi_t, gw_t, gb_t


# ----------------------------------------------------------------------------- rms norm


def fused_rms_norm(
    input: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None,
    eps: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """aten._fused_rms_norm.default -> (out, rstd); rstd in the compute dtype, ``[..., 1]``.

    ``eps=None`` means the machine epsilon of the input dtype (torch's rule).
    """
    ct = float_compute(input, "_fused_rms_norm: input")
    axis, m, n = _split(input, normalized_shape, "_fused_rms_norm")
    e = torch.finfo(input.dtype).eps if eps is None else float(eps)
    x = _mat(input, m, n, ct)
    w = _param(weight, n, 1.0, ct, "_fused_rms_norm: weight")
    y = reusable_empty_like(x)
    rstd = np.empty(m, dtype=x.dtype)
    _rms_norm_rows(x, w, x.dtype.type(e), y, rstd)
    stat_shape = list(input.shape[:axis]) + [1] * (input.dim() - axis)
    return _to(y, input.shape, input.dtype), _to(rstd, stat_shape, ct)


def fused_rms_norm_backward(  # noqa: PLR0917 - fixed positional signature
    grad_out: torch.Tensor,
    input: torch.Tensor,
    normalized_shape: Sequence[int],
    rstd: torch.Tensor,
    weight: torch.Tensor | None,
    output_mask: Sequence[bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """aten._fused_rms_norm_backward.default -> (grad_input, grad_weight)."""
    ct, m, n, x, g = _backward_rows(
        grad_out, input, normalized_shape, output_mask, 2, "_fused_rms_norm_backward"
    )
    rs = _stats(rstd, m, ct, "_fused_rms_norm_backward: rstd")
    w = _param(weight, n, 1.0, ct, "_fused_rms_norm_backward: weight")
    zeros = np.zeros(m, dtype=x.dtype)
    gi_t = gw_t = None
    if output_mask[0]:
        gi = reusable_empty_like(x)
        _norm_backward_rows(g, x, w, zeros, rs, False, gi)
        gi_t = _to(gi, input.shape, input.dtype)
    if output_mask[1] and weight is not None:
        gwt = np.empty(n, dtype=x.dtype)
        gbs = np.empty(n, dtype=x.dtype)
        _norm_param_grads(g, x, zeros, rs, gwt, gbs)
        gw_t = _to(gwt, weight.shape, weight.dtype)
    return gi_t, gw_t


ATEN_KERNELS: dict[str, Callable[..., object]] = {
    "aten.native_layer_norm.default": native_layer_norm,
    "aten.native_layer_norm_backward.default": native_layer_norm_backward,
    "aten._fused_rms_norm.default": fused_rms_norm,
    "aten._fused_rms_norm_backward.default": fused_rms_norm_backward,
}
