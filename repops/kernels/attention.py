"""The fused CPU attention ops torch reaches from F.scaled_dot_product_attention (spec §4).

Why these two ops: inside a TorchDispatchMode, torch 2.13 on CPU sends
``scaled_dot_product_attention`` with equal head sizes and no dropout to
``aten._scaled_dot_product_flash_attention_for_cpu`` (and its ``_backward``), whose vendor
kernel blocks the key axis and rescales partial sums online (Dao et al., "FlashAttention",
NeurIPS 2022), so its bits depend on the block size. spec/linalg.md §4 instead fixes one
order per element: scores and outputs are C5 chains (the blocked product of
:mod:`repops.kernels.matmul_core`), the softmax of each query row is max, ``exp_f32``, C4
lane sum and one division per element. The backward recomputes the probabilities with the
same steps, so it is the exact derivative chain of what the forward computed.

Two schedules, the same bits: one head per parallel item (:mod:`repops.kernels.attention_heads`,
memory per thread rather than per batch) when there are at least as many heads as threads, and
otherwise the whole batch at once, whose products parallelise inside a head.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import torch

from repops._numba import pjit, thread_count
from repops._tensor import from_compute, to_compute
from repops.errors import RepopsInputError, UnsupportedInputError
from repops.kernels._buffers import reusable_empty
from repops.kernels.attention_heads import (
    BOOL_MASK,
    FLOAT_MASK,
    NO_MASK,
    backward_heads,
    forward_heads,
    row_dot,
    scaled_score_grad_row,
    softmax_row,
)
from repops.kernels.matmul_core import gemm, product_kind, unit_scalars


class AttentionShapeError(RepopsInputError):
    """query/key/value/mask/gradient shapes or dtypes do not fit together."""


@pjit
def _softmax_rows(s, c, mode, maskf, maskb, causal):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """:func:`softmax_row` for every query row of every head: (p, logsumexp)."""
    nbh, nl, ns = s.shape
    p = np.empty((nbh, nl, ns), dtype=np.float32)
    lse = np.empty((nbh, nl), dtype=np.float32)
    for row in numba.prange(nbh * nl):
        b = row // nl
        i = row - b * nl
        lse[b, i] = softmax_row(p[b, i], s[b, i], c, mode, maskf, maskb, causal, b, i)
    return p, lse


@pjit
def _scaled_score_grads(p, dp, dd, c):  # type: ignore[no-untyped-def]
    """:func:`scaled_score_grad_row` for every query row, in one pass instead of three array
    temporaries."""
    nbh, nl, ns = p.shape
    dt = np.empty((nbh, nl, ns), dtype=np.float32)
    for row in numba.prange(nbh * nl):
        b = row // nl
        i = row - b * nl
        scaled_score_grad_row(dt[b, i], p[b, i], dp[b, i], dd[b, i, 0], c)
    return dt


@pjit
def _paired_row_dots(a, b):  # type: ignore[no-untyped-def]
    """``out[r] = DOT(a[r, :], b[r, :])`` (:func:`row_dot`) for 2-D binary32 arrays."""
    nr = a.shape[0]
    out = np.empty(nr, dtype=np.float32)
    for r in numba.prange(nr):
        out[r] = row_dot(a[r], b[r])
    return out


def _check(name: str, t: Any) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype == torch.float64:
        raise UnsupportedInputError(
            f"{name} is float64; repops attention computes in binary32 only (spec §4)"
        )
    if t.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise UnsupportedInputError(
            f"{name} has dtype {t.dtype}; repops attention takes float16, bfloat16 or float32"
        )
    if t.dim() != 4:
        raise AttentionShapeError(f"{name} must be 4-D (B, H, len, head), got {tuple(t.shape)}")
    return t


class _Problem:
    """Validated attention inputs as (B*H, len, head) binary32 arrays plus the mask and scale."""

    def __init__(  # noqa: PLR0917 - mirrors the aten arguments
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        dropout_p: float,
        is_causal: bool,
        attn_mask: torch.Tensor | None,
        scale: float | None,
    ) -> None:
        for name, t in (("query", query), ("key", key), ("value", value)):
            _check(name, t)
        if float(dropout_p) > 0.0:
            raise UnsupportedInputError(
                f"aten._scaled_dot_product_flash_attention_for_cpu with dropout_p={dropout_p}: "
                "the fused op has no reproducible dropout (torch routes dropout to the math path)"
            )
        if len({query.dtype, key.dtype, value.dtype}) != 1:
            raise AttentionShapeError(
                f"query, key, value must share one dtype, got {query.dtype}, {key.dtype}, "
                f"{value.dtype}"
            )
        bsz, heads, nl, ne = query.shape
        if tuple(key.shape[:2]) != (bsz, heads) or tuple(value.shape[:2]) != (bsz, heads):
            raise UnsupportedInputError(
                f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}:"
                " batch and head counts must be equal (no head broadcasting)"
            )
        ns = key.shape[2]
        if key.shape[3] != ne or value.shape[2] != ns:
            raise AttentionShapeError(
                f"key must be (B, H, S, {ne}) and value (B, H, S, Ev) with one S; got key "
                f"{tuple(key.shape)}, value {tuple(value.shape)}"
            )
        self.dtype = query.dtype
        self.shape = (bsz, heads, nl, ns, ne, value.shape[3])
        nbh = bsz * heads
        self.q = to_compute(query).reshape(nbh, nl, ne)
        self.k = to_compute(key).reshape(nbh, ns, ne)
        self.v = to_compute(value).reshape(nbh, ns, value.shape[3])
        self.causal = bool(is_causal)
        default = 1.0 / math.sqrt(ne) if ne > 0 else math.inf
        self.c = np.float32(default if scale is None else float(scale))
        self.mode = NO_MASK
        self.maskf = np.zeros((1, 1, 1), dtype=np.float32)
        self.maskb = np.zeros((1, 1, 1), dtype=np.bool_)
        if attn_mask is not None:
            try:
                full = torch.broadcast_to(attn_mask, (bsz, heads, nl, ns))
            except RuntimeError:
                raise AttentionShapeError(
                    f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to "
                    f"{(bsz, heads, nl, ns)}"
                ) from None
            if attn_mask.dtype == torch.bool:
                self.mode = BOOL_MASK
                self.maskb = full.contiguous().numpy().reshape(nbh, nl, ns)
            elif attn_mask.dtype == self.dtype:
                self.mode = FLOAT_MASK
                self.maskf = to_compute(full).reshape(nbh, nl, ns)
            else:
                raise AttentionShapeError(
                    f"attn_mask must be bool or {self.dtype} like query, got {attn_mask.dtype}"
                )

    def per_head(self) -> bool:
        """Whether to run one head per parallel item (:mod:`repops.kernels.attention_heads`):
        when there are at least as many heads as threads. Either schedule gives the same bits."""
        return self.q.shape[0] >= thread_count()

    def kinds(self, *columns: int) -> np.ndarray:
        """The tile families of products with these column counts (as :func:`gemm` picks)."""
        return np.array([product_kind(n, np.dtype(np.float32)) for n in columns], np.int64)

    def probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps 1-10 and 12: ``p`` (B*H, L, S) and ``logsumexp`` (B*H, L)."""
        scores = gemm(self.q, self.k.transpose(0, 2, 1))  # the core reads the transpose in place
        return _softmax_rows(scores, self.c, self.mode, self.maskf, self.maskb, self.causal)


def flash_attention_for_cpu(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """aten._scaled_dot_product_flash_attention_for_cpu.default -> (output, logsumexp)."""
    pr = _Problem(query, key, value, dropout_p, is_causal, attn_mask, scale)
    bsz, heads, nl, ns, _, nev = pr.shape
    if pr.per_head():
        out = reusable_empty((bsz * heads, nl, nev), np.float32)
        lse = np.empty((bsz * heads, nl), dtype=np.float32)
        forward_heads(pr.q, pr.k, pr.v, pr.c, pr.mode, pr.maskf, pr.maskb, pr.causal,
                      pr.kinds(ns, nev), unit_scalars(np.dtype(np.float32)), out, lse)
    else:
        p, lse = pr.probabilities()
        out = gemm(p, pr.v)
    return (from_compute(out.reshape(bsz, heads, nl, nev), pr.dtype),
            torch.from_numpy(lse.reshape(bsz, heads, nl)))


def flash_attention_for_cpu_backward(  # noqa: PLR0917 - the aten signature
    grad_out: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    out: torch.Tensor,
    logsumexp: torch.Tensor,
    dropout_p: float,
    is_causal: bool,
    *,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """aten._scaled_dot_product_flash_attention_for_cpu_backward.default -> (dq, dk, dv)."""
    pr = _Problem(query, key, value, dropout_p, is_causal, attn_mask, scale)
    bsz, heads, nl, ns, ne, nev = pr.shape
    for name, t, shape in (
        ("grad_out", grad_out, (bsz, heads, nl, nev)),
        ("out", out, (bsz, heads, nl, nev)),
        ("logsumexp", logsumexp, (bsz, heads, nl)),
    ):
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise AttentionShapeError(f"{name} must have shape {shape}, got {got}")
    for name, t in (("grad_out", grad_out), ("out", out)):
        if t.dtype != pr.dtype:
            raise AttentionShapeError(f"{name} must be {pr.dtype} like query, got {t.dtype}")
    nbh = bsz * heads
    d_o = to_compute(grad_out).reshape(nbh, nl, nev)
    o = to_compute(out).reshape(nbh, nl, nev)
    if pr.per_head():
        dq, dk, dv = (reusable_empty((nbh, n, e), np.float32)
                      for n, e in ((nl, ne), (ns, ne), (ns, nev)))
        backward_heads(pr.q, pr.k, pr.v, d_o, o, pr.c, pr.mode, pr.maskf, pr.maskb, pr.causal,
                       pr.kinds(ns, nev, ns, ne), unit_scalars(np.dtype(np.float32)), dq, dk, dv,
                       np.empty((nbh, nl), dtype=np.float32))
    else:
        dq, dk, dv = _backward_whole(pr, d_o, o)
    return (
        from_compute(dq.reshape(bsz, heads, nl, ne), query.dtype),
        from_compute(dk.reshape(bsz, heads, ns, ne), key.dtype),
        from_compute(dv.reshape(bsz, heads, ns, nev), value.dtype),
    )


def _backward_whole(
    pr: _Problem, d_o: np.ndarray, o: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backward products over the whole batch at once (few heads: see attention_heads)."""
    nbh, nl, nev = d_o.shape
    p, _ = pr.probabilities()
    # Transposed operands are views: the blocked core reads any layout in logical order.
    dv = gemm(p.transpose(0, 2, 1), d_o)
    dp = gemm(d_o, pr.v.transpose(0, 2, 1))
    dd = _paired_row_dots(d_o.reshape(nbh * nl, nev), o.reshape(nbh * nl, nev))
    dt = _scaled_score_grads(p, dp, dd.reshape(nbh, nl, 1), pr.c)
    return gemm(dt, pr.k), gemm(dt.transpose(0, 2, 1), pr.q), dv


ATEN_KERNELS: dict[str, Callable[..., Any]] = {
    "aten._scaled_dot_product_flash_attention_for_cpu.default": flash_attention_for_cpu,
    "aten._scaled_dot_product_flash_attention_for_cpu_backward.default": (
        flash_attention_for_cpu_backward
    ),
}
