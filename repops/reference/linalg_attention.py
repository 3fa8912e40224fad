"""Reference fused attention, written straight from repops/spec/linalg.md §4.

Row by row, each step of the spec in its own line, every chain from
:func:`repops.reference.linalg.dot_chain` and every sum from ``lsum``. ``exp`` and ``log`` are
parameters (scalar-or-array binary32 functions) so a test can say which implementation of
spec/elementwise.md it uses; the defaults are the elementwise references.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from repops.reference.elementwise import exp_f32_reference, log_f32_reference
from repops.reference.linalg import dot_chain, lsum, round_out, widen

F32 = np.float32
Fn = Callable[[Any], Any]


def _scale(e: int, scale: float | None) -> np.float32:
    return F32(1.0 / math.sqrt(e) if scale is None else scale)


def _row_probabilities(
    q: np.ndarray, k: np.ndarray, i: int, c: np.float32, *, mask_row: np.ndarray | None,
    causal: bool, exp: Fn, log: Fn,
) -> tuple[np.ndarray, np.float32]:
    """Steps 2-10 and 12 for query row ``i`` of one (b, h): (p_0..p_{S-1}, logsumexp)."""
    ns, ne = k.shape
    t = np.empty(ns, dtype=F32)
    for j in range(ns):
        s_j = dot_chain([q[i, e] for e in range(ne)], [k[j, e] for e in range(ne)], F32)  # 2
        t_j = F32(s_j * c)  # 3
        if mask_row is not None and mask_row.dtype == np.bool_:  # 4, bool mask
            if not mask_row[j]:
                t_j = F32(-np.inf)
        elif mask_row is not None:  # 4, float mask
            t_j = F32(t_j + mask_row[j])
        if causal and j > i:  # 5
            t_j = F32(-np.inf)
        t[j] = t_j
    m = F32(np.nan) if np.isnan(t).any() else F32(np.max(t))  # 6
    if m == 0:  # a zero maximum is +0 if any t_j is +0 (-0 < +0 in step 6)
        m = F32(0.0) if (t == 0).any() and not np.signbit(t[t == 0]).all() else F32(-0.0)
    if m == -np.inf:  # 7
        return np.zeros(ns, dtype=F32), F32(-np.inf)
    e_ = np.array([exp(F32(t[j] - m)) for j in range(ns)], dtype=F32)  # 8
    total = F32(lsum([e_[j] for j in range(ns)], F32))  # 9
    p = np.array([F32(e_[j] / total) for j in range(ns)], dtype=F32)  # 10
    lse = F32(m + F32(log(total)))  # 12
    return p, lse


def _probabilities(
    q: np.ndarray, k: np.ndarray, c: np.float32, *, mask: np.ndarray | None, causal: bool,
    exp: Fn, log: Fn,
) -> tuple[np.ndarray, np.ndarray]:
    """p (B, H, L, S) and logsumexp (B, H, L) for widened (B, H, len, head) arrays."""
    bsz, heads, nl, _ = q.shape
    ns = k.shape[2]
    p = np.zeros((bsz, heads, nl, ns), dtype=F32)
    lse = np.zeros((bsz, heads, nl), dtype=F32)
    for b in range(bsz):
        for h in range(heads):
            for i in range(nl):
                row = None if mask is None else mask[b, h, i]
                p[b, h, i], lse[b, h, i] = _row_probabilities(
                    q[b, h], k[b, h], i, c, mask_row=row, causal=causal, exp=exp, log=log
                )
    return p, lse


def _mask(attn_mask: torch.Tensor | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if attn_mask is None:
        return None
    full = torch.broadcast_to(attn_mask, shape)
    return full.numpy().copy() if attn_mask.dtype == torch.bool else widen(full)


def attention_reference(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    is_causal: bool = False,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
    exp: Fn = exp_f32_reference,
    log: Fn = log_f32_reference,
) -> tuple[torch.Tensor, torch.Tensor]:
    """§4 forward: (output, logsumexp)."""
    q, k, v = widen(query), widen(key), widen(value)
    bsz, heads, nl, ne = q.shape
    ns, nev = v.shape[2], v.shape[3]
    c = _scale(ne, scale)
    mask = _mask(attn_mask, (bsz, heads, nl, ns))
    p, lse = _probabilities(q, k, c, mask=mask, causal=is_causal, exp=exp, log=log)
    out = np.zeros((bsz, heads, nl, nev), dtype=F32)
    for b in range(bsz):
        for h in range(heads):
            for i in range(nl):
                for d in range(nev):  # 11
                    out[b, h, i, d] = dot_chain([p[b, h, i, j] for j in range(ns)],
                                                [v[b, h, j, d] for j in range(ns)], F32)
    return round_out(out, query.dtype), torch.from_numpy(lse)


def attention_backward_reference(
    grad_out: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    out: torch.Tensor,
    *,
    is_causal: bool = False,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
    exp: Fn = exp_f32_reference,
    log: Fn = log_f32_reference,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """§4 backward: (grad_query, grad_key, grad_value)."""
    q, k, v = widen(query), widen(key), widen(value)
    d_o, o = widen(grad_out), widen(out)
    bsz, heads, nl, ne = q.shape
    ns, nev = v.shape[2], v.shape[3]
    c = _scale(ne, scale)
    mask = _mask(attn_mask, (bsz, heads, nl, ns))
    p, _ = _probabilities(q, k, c, mask=mask, causal=is_causal, exp=exp, log=log)
    dq = np.zeros(q.shape, dtype=F32)
    dk = np.zeros(k.shape, dtype=F32)
    dv = np.zeros(v.shape, dtype=F32)
    for b in range(bsz):
        for h in range(heads):
            pb, dob, ob = p[b, h], d_o[b, h], o[b, h]
            for j in range(ns):
                for d in range(nev):
                    dv[b, h, j, d] = dot_chain([pb[i, j] for i in range(nl)],
                                               [dob[i, d] for i in range(nl)], F32)
            dt = np.zeros((nl, ns), dtype=F32)
            for i in range(nl):
                big_d = dot_chain([dob[i, d] for d in range(nev)], [ob[i, d] for d in range(nev)],
                                  F32)
                for j in range(ns):
                    dp = dot_chain([dob[i, d] for d in range(nev)],
                                   [v[b, h, j, d] for d in range(nev)], F32)
                    ds = F32(pb[i, j] * F32(dp - big_d))
                    dt[i, j] = F32(ds * c)
            for i in range(nl):
                for e in range(ne):
                    dq[b, h, i, e] = dot_chain([dt[i, j] for j in range(ns)],
                                               [k[b, h, j, e] for j in range(ns)], F32)
            for j in range(ns):
                for e in range(ne):
                    dk[b, h, j, e] = dot_chain([dt[i, j] for i in range(nl)],
                                               [q[b, h, i, e] for i in range(nl)], F32)
    return (round_out(dq, query.dtype), round_out(dk, key.dtype), round_out(dv, value.dtype))
