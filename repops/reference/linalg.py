"""Reference matrix products and convolution, written straight from repops/spec/linalg.md.

Slow on purpose: every output element is its own fma chain in the spec's order (vectorised
only *across* independent elements, never inside one chain), every fma is the exact
:func:`repops.reference.fma.fma32` / ``fma64``, and padding is written out as the spec's
``+0.0`` taps. Use small shapes (binary64 chains are exact-rational and very slow).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from repops.reference.fma import fma32, fma64

_fma64_vec = np.vectorize(fma64, otypes=[np.float64])


def widen(t: torch.Tensor) -> np.ndarray:
    """C1: float16/bfloat16/float32 -> binary32, float64 stays (exact)."""
    ct = torch.float64 if t.dtype == torch.float64 else torch.float32
    return t.detach().to(ct).numpy().copy()


def round_out(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """C1: the one final rounding to the output dtype (RNE)."""
    return torch.from_numpy(np.array(a, copy=True)).to(dtype)


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact fma in the dtype of ``c`` (binary32 or binary64), elementwise."""
    if np.asarray(c).dtype == np.float64:
        return _fma64_vec(a, b, c)
    return fma32(a, b, c)


def dot_chain(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    """DOT: ``acc = +0.0; acc = fma(x_k, y_k, acc)`` for k in the order of the lists."""
    shape = np.broadcast_shapes(*(np.shape(x) for x in xs), *(np.shape(y) for y in ys))
    acc = np.zeros(shape, dtype=dtype)
    for x, y in zip(xs, ys, strict=True):
        acc = fma(np.asarray(x, dtype=dtype), np.asarray(y, dtype=dtype), acc)
    return acc


def lsum(xs: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    """C4 LSUM of the arrays in ``xs`` (elementwise across them), in list order."""
    shape = np.broadcast_shapes(*(np.shape(x) for x in xs)) if xs else ()
    s = [np.full(shape, -0.0, dtype=dtype) for _ in range(16)]
    for i, x in enumerate(xs):
        s[i % 16] = (s[i % 16] + np.asarray(x, dtype=dtype)).astype(dtype)
    return (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))) + (
        ((s[8] + s[9]) + (s[10] + s[11])) + ((s[12] + s[13]) + (s[14] + s[15]))
    )


# --- §2 matrix products -------------------------------------------------------------------


def product_reference(an: np.ndarray, bn: np.ndarray) -> np.ndarray:
    """Compute-type DOT(an[i,:], bn[:,j]) over k = 0..K-1 for widened 2-D arrays."""
    kk = an.shape[1]
    out = dot_chain([an[:, k, None] for k in range(kk)], [bn[None, k, :] for k in range(kk)],
                    an.dtype.type)
    return np.broadcast_to(out, (an.shape[0], bn.shape[1])).copy()


def mm_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """out[i,j] = DOT(a[i,:], b[:,j]) over k = 0..K-1."""
    return round_out(product_reference(widen(a), widen(b)), a.dtype)


def bmm_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    an, bn = widen(a), widen(b)
    out = np.stack([product_reference(an[i], bn[i]) for i in range(an.shape[0])])
    return round_out(out.reshape(a.shape[0], a.shape[1], b.shape[2]), a.dtype)


def _scaled(x: np.ndarray, s: float) -> np.ndarray:
    return (x.dtype.type(s) * x).astype(x.dtype)


def _bias_step(p: np.ndarray, bias: torch.Tensor, beta: float, alpha: float) -> np.ndarray:
    p = _scaled(p, alpha)
    if beta == 0:
        return p
    q = _scaled(widen(torch.broadcast_to(bias, p.shape)), beta)
    return (q + p).astype(p.dtype)


def addmm_reference(
    bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, beta: float = 1, alpha: float = 1
) -> torch.Tensor:
    """§2 steps 1-5: p = DOT; p = alpha*p; beta == 0 -> p; else beta*bias + p."""
    p = product_reference(widen(a), widen(b))
    return round_out(_bias_step(p, bias, beta, alpha), a.dtype)


def baddbmm_reference(
    bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, beta: float = 1, alpha: float = 1
) -> torch.Tensor:
    an, bn = widen(a), widen(b)
    p = np.stack([product_reference(an[i], bn[i]) for i in range(an.shape[0])])
    p = p.reshape(a.shape[0], a.shape[1], b.shape[2])
    return round_out(_bias_step(p, bias, beta, alpha), a.dtype)


def mv_reference(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return mm_reference(a, v[:, None])[:, 0]


def dot_reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return mm_reference(x[None, :], y[:, None]).reshape(())


# --- §3 convolution -----------------------------------------------------------------------


def _pair(v: Sequence[int]) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if len(v) == 2 else (1, int(v[0]))


def _xpad(x: np.ndarray, n: int, c: int, y: int, xx: int) -> np.ndarray | float:
    h, w = x.shape[2], x.shape[3]
    if 0 <= y < h and 0 <= xx < w:
        return x[n, c, y, xx]
    return 0.0


def conv2d_reference(
    inp: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """§3 forward, element by element (4-D input)."""
    x, w = widen(inp), widen(weight)
    t = x.dtype.type
    sh, sw = _pair(stride)
    ph, pw = (int(padding[0]), int(padding[1]))
    dh, dw = _pair(dilation)
    nb, _, h, wd = x.shape
    cout, cg, kh_, kw_ = w.shape
    og = cout // groups
    oh_ = (h + 2 * ph - dh * (kh_ - 1) - 1) // sh + 1
    ow_ = (wd + 2 * pw - dw * (kw_ - 1) - 1) // sw + 1
    out = np.zeros((nb, cout, oh_, ow_), dtype=t)
    for n in range(nb):
        for co in range(cout):
            gi = co // og
            for oh in range(oh_):
                for ow in range(ow_):
                    xs, ws = [], []
                    for ci in range(cg):
                        for kh in range(kh_):
                            for kw in range(kw_):
                                xs.append(_xpad(x, n, gi * cg + ci, oh * sh - ph + kh * dh,
                                                ow * sw - pw + kw * dw))
                                ws.append(w[co, ci, kh, kw])
                    acc = dot_chain(xs, ws, t)
                    if bias is not None:
                        acc = (acc + widen(bias)[co]).astype(t)
                    out[n, co, oh, ow] = acc
    return round_out(out, inp.dtype)


def conv2d_backward_reference(
    dy_t: torch.Tensor,
    inp: torch.Tensor,
    weight: torch.Tensor,
    *,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """§3 backward: (grad_input, grad_weight, grad_bias), element by element (4-D input)."""
    x, w, dy = widen(inp), widen(weight), widen(dy_t)
    t = x.dtype.type
    sh, sw = _pair(stride)
    ph, pw = (int(padding[0]), int(padding[1]))
    dh, dw = _pair(dilation)
    nb, cin, h, wd = x.shape
    cout, cg, kh_, kw_ = w.shape
    og = cout // groups
    oh_, ow_ = dy.shape[2], dy.shape[3]

    def dyz(n: int, co: int, u: int, v: int) -> float:
        if u >= 0 and v >= 0 and u % sh == 0 and v % sw == 0 and u // sh < oh_ and v // sw < ow_:
            return dy[n, co, u // sh, v // sw]
        return 0.0

    gin = np.zeros(x.shape, dtype=t)
    for n in range(nb):
        for c in range(cin):
            gi, ci = c // cg, c % cg
            for yy in range(h):
                for xx in range(wd):
                    a, b = [], []
                    for o in range(og):
                        for kh in range(kh_):
                            for kw in range(kw_):
                                a.append(dyz(n, gi * og + o, yy + ph - kh * dh, xx + pw - kw * dw))
                                b.append(w[gi * og + o, ci, kh, kw])
                    gin[n, c, yy, xx] = dot_chain(a, b, t)
    gw = np.zeros(w.shape, dtype=t)
    for co in range(cout):
        gi = co // og
        for ci in range(cg):
            for kh in range(kh_):
                for kw in range(kw_):
                    a, b = [], []
                    for n in range(nb):
                        for oh in range(oh_):
                            for ow in range(ow_):
                                a.append(dy[n, co, oh, ow])
                                b.append(_xpad(x, n, gi * cg + ci, oh * sh - ph + kh * dh,
                                               ow * sw - pw + kw * dw))
                    gw[co, ci, kh, kw] = dot_chain(a, b, t)
    gb = np.zeros(cout, dtype=t)
    for co in range(cout):
        gb[co] = lsum([dy[n, co, oh, ow] for n in range(nb) for oh in range(oh_)
                       for ow in range(ow_)], t)
    return round_out(gin, inp.dtype), round_out(gw, weight.dtype), round_out(gb, dy_t.dtype)
