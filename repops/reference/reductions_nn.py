"""Numpy reference for spec/reductions.md §5–§8 and §11: softmax family, layer/RMS norm,
nll/mse losses and embedding backward.

Same style as :mod:`repops.reference.reductions`: inputs are compute-type numpy arrays already
arranged as the spec's rows (``(R, n)``, one row per output slice), every step is the spec's
sentence with numpy binary32 operations and :func:`fma` where the spec writes fma, loops over
elements in the spec's order. ``exp``/``log`` are passed in (the elementwise references
``exp_f32_reference`` / ``log_f32_reference`` by default).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from repops.reference.elementwise import exp_f32_reference, log_f32_reference
from repops.reference.reductions import LANES, fma, ldot, lsum, tree

F32 = np.float32
Fn = Callable[[np.ndarray], np.ndarray]


def row_max_reference(rows: np.ndarray) -> np.ndarray:
    """§7 step 1: largest non-NaN element (``-inf`` if none), then ``m + 0.0``."""
    m = np.full(rows.shape[0], -np.inf, dtype=rows.dtype)
    for i in range(rows.shape[1]):
        v = rows[:, i]
        m = np.where(v > m, v, m)
    return m + rows.dtype.type(0.0)


def softmax_reference(rows: np.ndarray, exp: Fn = exp_f32_reference) -> np.ndarray:
    """§7: ``y_i = e_i / LSUM(e)``, ``e_i = exp(x_i - m)``."""
    with np.errstate(all="ignore"):
        m = row_max_reference(rows)
        e = exp(rows - m[:, None])
        return e / lsum(e)[:, None]


def log_softmax_reference(
    rows: np.ndarray, exp: Fn = exp_f32_reference, log: Fn = log_f32_reference
) -> np.ndarray:
    """§7: ``y_i = (x_i - m) - log(LSUM(e))``."""
    with np.errstate(all="ignore"):
        m = row_max_reference(rows)
        e = exp(rows - m[:, None])
        return (rows - m[:, None]) - log(lsum(e))[:, None]


def logsumexp_reference(
    rows: np.ndarray, exp: Fn = exp_f32_reference, log: Fn = log_f32_reference
) -> np.ndarray:
    """§7: NaN if any NaN; ``m`` if ``m`` is ±inf; else ``m + log(LSUM(exp(x - m)))``."""
    with np.errstate(all="ignore"):
        m = row_max_reference(rows)
        e = exp(rows - m[:, None])
        out = m + log(lsum(e))
        out = np.where(np.isinf(m), m, out)
        return np.where(np.isnan(rows).any(axis=1), F32(np.nan), out).astype(rows.dtype)


def softmax_backward_reference(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """§7: ``gi_i = y_i * (g_i - LDOT(g, y))``."""
    d = ldot(g, y)
    return y * (g - d[:, None])


def log_softmax_backward_reference(
    g: np.ndarray, y: np.ndarray, exp: Fn = exp_f32_reference
) -> np.ndarray:
    """§7: ``gi_i = fma(-exp(y_i), LSUM(g), g_i)``."""
    s = lsum(g)
    with np.errstate(all="ignore"):
        return fma(-exp(y), s[:, None], g)


def layer_norm_reference(
    x: np.ndarray, w: np.ndarray | None, b: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§5 forward over rows ``(R, n)``: ``(y, mean, rstd)``."""
    t = x.dtype.type
    n = t(x.shape[1])
    w = np.ones(x.shape[1], x.dtype) if w is None else w
    b = np.full(x.shape[1], -0.0, x.dtype) if b is None else b
    with np.errstate(all="ignore"):
        mu = lsum(x) / n
        d = x - mu[:, None]
        var = ldot(d, d) / n
        rstd = t(1.0) / np.sqrt(var + t(eps))
        y = fma((x - mu[:, None]) * rstd[:, None], w[None, :], b[None, :])
    return y, mu, rstd


def _column_sums(g: np.ndarray, xhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(LDOT_r(g[r,j], xhat[r,j]), LSUM_r(g[r,j]))`` per column, lanes over rows ``r``."""
    cols = g.shape[1]
    accw = np.full((cols, LANES), -0.0, dtype=g.dtype)
    accb = np.full((cols, LANES), -0.0, dtype=g.dtype)
    for r in range(g.shape[0]):
        lane = r % LANES
        accw[:, lane] = fma(g[r], xhat[r], accw[:, lane])
        accb[:, lane] = accb[:, lane] + g[r]
    return tree(accw), tree(accb)


def layer_norm_backward_reference(
    g: np.ndarray, x: np.ndarray, mean: np.ndarray, rstd: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§5 backward: ``(grad_input, grad_weight, grad_bias)``."""
    n = x.dtype.type(x.shape[1])
    w = np.ones(x.shape[1], x.dtype) if w is None else w
    with np.errstate(all="ignore"):
        xhat = (x - mean[:, None]) * rstd[:, None]
        gw = g * w[None, :]
        c1 = lsum(gw) / n
        c2 = ldot(gw, xhat) / n
        gi = fma(-xhat, c2[:, None], gw - c1[:, None]) * rstd[:, None]
    gwt, gb = _column_sums(g, xhat)
    return gi, gwt, gb


def rms_norm_reference(
    x: np.ndarray, w: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """§6 forward: ``(y, rstd)``."""
    t = x.dtype.type
    w = np.ones(x.shape[1], x.dtype) if w is None else w
    with np.errstate(all="ignore"):
        ms = ldot(x, x) / t(x.shape[1])
        rstd = t(1.0) / np.sqrt(ms + t(eps))
        return (x * rstd[:, None]) * w[None, :], rstd


def rms_norm_backward_reference(
    g: np.ndarray, x: np.ndarray, rstd: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """§6 backward: ``(grad_input, grad_weight)``."""
    n = x.dtype.type(x.shape[1])
    w = np.ones(x.shape[1], x.dtype) if w is None else w
    with np.errstate(all="ignore"):
        xhat = x * rstd[:, None]
        gw = g * w[None, :]
        c2 = ldot(gw, xhat) / n
        gi = fma(-xhat, c2[:, None], gw) * rstd[:, None]
    gwt, _ = _column_sums(g, xhat)
    return gi, gwt


def nll_forward_reference(
    x: np.ndarray, t: np.ndarray, weight: np.ndarray | None, reduction: str, ignore_index: int
) -> tuple[np.ndarray, np.ndarray]:
    """§8 nll over positions: ``x`` is ``(P, C)``, ``t`` is ``(P,)``; returns compute scalars."""
    p_count = x.shape[0]
    w = np.zeros(p_count, dtype=x.dtype)
    loss = np.zeros(p_count, dtype=x.dtype)
    for p in range(p_count):
        if t[p] == ignore_index:
            continue
        w[p] = x.dtype.type(1.0) if weight is None else weight[t[p]]
        loss[p] = -(w[p] * x[p, t[p]])
    if reduction == "none":
        return loss, np.zeros((), x.dtype)
    total = lsum(loss[None, :])[0]
    tw = lsum(w[None, :])[0]
    with np.errstate(all="ignore"):
        out = total / tw if reduction == "mean" else total
    return np.asarray(out, x.dtype), np.asarray(tw, x.dtype)


def nll_backward_reference(  # noqa: PLR0917 - mirrors the aten signature
    g: np.ndarray,
    x_shape: tuple[int, int],
    t: np.ndarray,
    weight: np.ndarray | None,
    reduction: str,
    ignore_index: int,
    total_weight: np.floating,
) -> np.ndarray:
    """§8 nll backward: ``gi[p, t_p] = -(w_p * c_p)``, ``+0.0`` elsewhere."""
    gi = np.zeros(x_shape, dtype=g.dtype)
    for p in range(x_shape[0]):
        if t[p] == ignore_index:
            continue
        w = g.dtype.type(1.0) if weight is None else weight[t[p]]
        if reduction == "none":
            c = g[p]
        elif reduction == "sum":
            c = g.reshape(-1)[0]
        else:
            with np.errstate(all="ignore"):
                c = g.reshape(-1)[0] / total_weight
        gi[p, t[p]] = -(w * c)
    return gi


def mse_reference(x: np.ndarray, t: np.ndarray, reduction: str) -> np.ndarray:
    """§8 mse over flat ``x``, ``t``."""
    d = x - t
    if reduction == "none":
        return d * d
    s = ldot(d[None, :], d[None, :])[0]
    return np.asarray(s / x.dtype.type(x.shape[0]) if reduction == "mean" else s, x.dtype)


def mse_backward_reference(
    g: np.ndarray, x: np.ndarray, t: np.ndarray, reduction: str
) -> np.ndarray:
    """§8 mse backward: ``(x - t) * c``."""
    two = x.dtype.type(2.0)
    if reduction == "none":
        c = g * two
    else:
        c = g.reshape(-1)[0] * two
        if reduction == "mean":
            c = c / x.dtype.type(x.shape[0])
    return (x - t) * c


def embedding_backward_reference(
    g: np.ndarray, idx: np.ndarray, num_weights: int, padding_idx: int, scale: bool
) -> np.ndarray:
    """§11: row w sums ``g[p]`` over positions with ``idx[p] == w`` in increasing p."""
    out = np.zeros((num_weights, g.shape[1]), dtype=g.dtype)
    for w in range(num_weights):
        if w == padding_idx:
            continue
        hits = [p for p in range(idx.shape[0]) if idx[p] == w]
        if not hits:
            continue
        s = np.full(g.shape[1], -0.0, dtype=g.dtype)
        for p in hits:
            s = s + g[p]
        if scale:
            s = s / g.dtype.type(len(hits))
        out[w] = s
    return out
