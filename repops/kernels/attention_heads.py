"""Fused CPU attention one head at a time (spec/linalg.md §4, the same bits as the whole batch).

Why: the whole-batch schedule of :mod:`repops.kernels.attention` materialises the scores and
probabilities of every head at once (B*H*L*S floats: 4 MiB per layer for the bench's small
GPT, gigabytes for long sequences, plus the backward's dp and dt) and streams them through
memory between its steps. Here one parallel item is one head: its scores, probabilities, dp
and dt live in the item's own L*S buffers (in L2 for short sequences), so memory grows with
the thread count, not the batch. Each output element is still computed by the same C5 chain or
the same softmax row steps, in the same order, as the whole-batch path: the schedule moves
work between threads and buffers, never between roundings, so the bits are equal (tested).

With fewer heads than threads, :mod:`repops.kernels.attention` keeps the whole-batch schedule,
whose products parallelise inside a head (its memory is then at most threads * L * S too).
"""

from __future__ import annotations

import numba
import numpy as np

from repops._numba import fma, jit, pjit
from repops.kernels._lanes import lane_sum
from repops.kernels.matmul_core import gemm_serial
from repops.math._bits import maximum
from repops.math.exp import exp_f32
from repops.math.log import log_f32

#: How a mask is given (``mode`` of the kernels): none, added floats, or booleans (False: -inf).
NO_MASK = 0
FLOAT_MASK = 1
BOOL_MASK = 2


@jit
def softmax_row(pr, sr, c, mode, maskf, maskb, causal, b, i):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Steps 3-10 and 12 of spec §4 for query row ``i`` of head ``b``: ``pr`` gets the row's
    probabilities (``pr`` may be ``sr``: each element is read before it is written); returns
    its logsumexp.

    The row works in place (t, then e, then p): no allocation, and every loop vectorises (the
    maximum is an IEEE ``maximum`` chain: NaN-propagating, -0 < +0, the same in any grouping).
    """
    ns = sr.shape[0]
    ninf = np.float32(-np.inf)
    for j in range(ns):
        pr[j] = sr[j] * c
    if mode == FLOAT_MASK:
        mr = maskf[b, i]
        for j in range(ns):
            pr[j] = pr[j] + mr[j]
    elif mode == BOOL_MASK:
        br = maskb[b, i]
        for j in range(ns):
            if not br[j]:
                pr[j] = ninf
    if causal:
        for j in range(i + 1, ns):
            pr[j] = ninf
    m = ninf
    for j in range(ns):
        m = maximum(m, pr[j])
    if m == ninf:
        for j in range(ns):
            pr[j] = 0.0
        return ninf  # every position masked: p is +0.0
    for j in range(ns):
        pr[j] = exp_f32(np.float32(pr[j] - m))
    total = lane_sum(pr)
    for j in range(ns):
        pr[j] = pr[j] / total
    return m + log_f32(total)


@jit
def row_dot(a, b):  # type: ignore[no-untyped-def]
    """``DOT(a, b)`` of two binary32 rows: one C5 fma chain from +0.0 in increasing index
    (spec §4 backward, ``D`` of a query row)."""
    acc = np.float32(0.0)
    for e in range(a.shape[0]):
        acc = fma(a[e], b[e], acc)
    return acc


@jit
def scaled_score_grad_row(dt, p, dp, d, c):  # type: ignore[no-untyped-def]
    """``dt = (p * (dp - D)) * c`` along a query row (spec §4 backward: three roundings, in
    this order); ``dt`` may be ``dp``."""
    for j in range(p.shape[0]):
        dt[j] = (p[j] * (dp[j] - d)) * c


@jit
def _product(kind, scal, m, kk, n, a, sa1, sa2, b, sb1, sb2, c):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """C (m, n, C-contiguous at address ``c``) = A (m, kk) @ B (kk, n): operands by address and
    element strides (row, column), as one serial C5 product."""
    gemm_serial(kind, scal, 1, 1, m, kk, n, a, 0, sa1, sa2, b, 0, sb1, sb2, c, 0, 0, 0, 0, 0,
                0, 0)


@jit
def _head_probabilities(q, k, h, c, mode, maskf, maskb, causal, kind, scal, p, lse):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Steps 1-10 and 12 for head ``h``: its scores into ``p`` (L, S), then each row's softmax
    in place; the logsumexps go to ``lse[h]``."""
    nl, ne = q.shape[1], q.shape[2]
    ns = k.shape[1]
    _product(kind, scal, nl, ne, ns,
             q.ctypes.data + h * q.strides[0], q.strides[1] // 4, q.strides[2] // 4,
             k.ctypes.data + h * k.strides[0], k.strides[2] // 4, k.strides[1] // 4,
             p.ctypes.data)
    for i in range(nl):
        lse[h, i] = softmax_row(p[i], p[i], c, mode, maskf, maskb, causal, h, i)


@pjit
def forward_heads(q, k, v, c, mode, maskf, maskb, causal, kinds, scal, out, lse):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Forward for every head: ``out`` (B*H, L, Ev) and ``lse`` (B*H, L), preallocated.
    ``kinds``: the tile families of the scores and output products."""
    nbh, nl = q.shape[0], q.shape[1]
    ns, nev = k.shape[1], v.shape[2]
    for h in numba.prange(nbh):
        p = np.empty((nl, ns), dtype=np.float32)
        _head_probabilities(q, k, h, c, mode, maskf, maskb, causal, kinds[0], scal, p, lse)
        _product(kinds[1], scal, nl, ns, nev, p.ctypes.data, ns, 1,
                 v.ctypes.data + h * v.strides[0], v.strides[1] // 4, v.strides[2] // 4,
                 out.ctypes.data + h * out.strides[0])


@pjit
def backward_heads(q, k, v, d_o, o, c, mode, maskf, maskb, causal, kinds, scal,  # type: ignore[no-untyped-def] # noqa: PLR0917
                   dq, dk, dv, lse):
    """Backward for every head (spec §4): the probabilities recomputed, then
    ``dv = p^T dO``, ``dp = dO v^T``, ``D = DOT(dO row, o row)``, ``dt = (p (dp - D)) c``,
    ``dq = dt k`` and ``dk = dt^T q``, into the preallocated ``dq``, ``dk``, ``dv``.
    ``kinds``: tile families of the scores, dv, dp and dq/dk products."""
    nbh, nl, ne = q.shape
    ns, nev = k.shape[1], v.shape[2]
    for h in numba.prange(nbh):
        p = np.empty((nl, ns), dtype=np.float32)
        _head_probabilities(q, k, h, c, mode, maskf, maskb, causal, kinds[0], scal, p, lse)
        go = d_o.ctypes.data + h * d_o.strides[0]
        g1, g2 = d_o.strides[1] // 4, d_o.strides[2] // 4
        _product(kinds[1], scal, ns, nl, nev, p.ctypes.data, 1, ns, go, g1, g2,
                 dv.ctypes.data + h * dv.strides[0])
        dt = np.empty((nl, ns), dtype=np.float32)
        _product(kinds[2], scal, nl, nev, ns, go, g1, g2,
                 v.ctypes.data + h * v.strides[0], v.strides[2] // 4, v.strides[1] // 4,
                 dt.ctypes.data)
        for i in range(nl):
            scaled_score_grad_row(dt[i], p[i], dt[i], row_dot(d_o[h, i], o[h, i]), c)
        _product(kinds[3], scal, nl, ns, ne, dt.ctypes.data, ns, 1,
                 k.ctypes.data + h * k.strides[0], k.strides[1] // 4, k.strides[2] // 4,
                 dq.ctypes.data + h * dq.strides[0])
        _product(kinds[3], scal, ns, nl, ne, dt.ctypes.data, 1, ns,
                 q.ctypes.data + h * q.strides[0], q.strides[1] // 4, q.strides[2] // 4,
                 dk.ctypes.data + h * dk.strides[0])
