"""Blocked matrix-product core: ``C[b] = A[b] @ B[b]`` with the C5 order for every element.

Why this shape: SPEC.md C5 fixes each element as one fma chain over k increasing, starting from
+0.0. That leaves the *schedule* free as long as every element's chain is untouched, so this is
the classic GotoBLAS layering (Goto & van de Geijn, "Anatomy of High-Performance Matrix
Multiplication", ACM TOMS 2008) reduced to what the order allows:

* A is packed into micro-panels of ``MR`` rows (k-major), B into micro-panels of ``NR`` columns
  (k-major); the padding is zeros and padded rows/columns are never stored.
* The micro-kernel keeps an ``MR x NR`` tile of running accumulators in a private stack buffer,
  which LLVM promotes to vector registers for the whole k loop, and applies, for each k, one
  ``fma`` per element. The loop over the ``NR`` columns is what LLVM vectorises; the vector
  width only decides how many *independent* elements one instruction handles, never the order
  within one element (with ``NUMBA_CPU_NAME=generic`` the same loop is SSE2 code calling a
  correctly rounded software fma: slower, same bits).
* k is blocked by ``KC`` so a B micro-panel stays in L1. Between k-blocks the running
  accumulator of every element is parked in C (a float store/load is exact) and resumed, so
  the bits equal the unblocked chain. K is never split across threads.
* ``prange`` runs over B panels (packing), then over (batch, block of MC rows), each item
  packing its own rows of A and computing its C tiles: independent output elements only.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from repops._numba import fma, jit, pjit

#: Rows of C per micro-tile (6 x 4 vectors of accumulators + 4 B vectors fit 32 registers).
MR = 6
#: Columns of C per micro-tile (4 AVX-512 vectors of binary32; any width gives the same bits).
NR = 64
#: k-block length (a KC x NR binary32 B micro-panel is 64 KiB, streamed from L2).
KC = 256
#: Rows per parallel work item (a multiple of MR; an MC x KC block of packed A stays in L2).
MC = 48
#: Accumulators per micro-tile.
TILE = MR * NR


@intrinsic
def _stack_tile(typingctx: Any, like: Any, n: Any) -> Any:  # pragma: no cover - compiled
    """A pointer to ``n`` (a literal) stack slots of ``like``'s dtype.

    Why: an accumulator tile that LLVM can see is private (an ``alloca``) is kept in vector
    registers across the whole k loop; a heap array is not, because LLVM cannot prove that the
    packed B loads do not alias it. Pure code generation: the values are the same either way.
    """
    if not isinstance(n, types.IntegerLiteral) or not isinstance(like, types.Array):
        return None
    size = n.literal_value
    dtype = like.dtype

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return cgutils.alloca_once(builder, context.get_value_type(dtype), size=size)

    return types.CPointer(dtype)(like, n), codegen


@jit
def _micro(kc, ap, aoff, bp, boff, c, b, i0, j0, mr, nr, resume):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """One MR x NR tile over ``kc`` steps of k; ``resume`` reloads the parked accumulators."""
    acc = numba.carray(_stack_tile(c, TILE), (TILE,))
    for j in range(TILE):
        acc[j] = 0.0  # +0.0: the C5 starting value
    if resume:
        for r in range(mr):
            for j in range(nr):
                acc[r * NR + j] = c[b, i0 + r, j0 + j]
    # Unsigned offsets: numba then emits no negative-index wraparound, which would otherwise
    # turn the contiguous B loads into gathers.
    u_nr = np.uint64(NR)
    u_mr = np.uint64(MR)
    for k in range(np.uint64(kc)):
        pa = np.uint64(aoff) + k * u_mr
        a0 = ap[pa]
        a1 = ap[pa + np.uint64(1)]
        a2 = ap[pa + np.uint64(2)]
        a3 = ap[pa + np.uint64(3)]
        a4 = ap[pa + np.uint64(4)]
        a5 = ap[pa + np.uint64(5)]
        pb = np.uint64(boff) + k * u_nr
        for j in range(u_nr):
            bv = bp[pb + j]
            acc[j] = fma(a0, bv, acc[j])
            acc[u_nr + j] = fma(a1, bv, acc[u_nr + j])
            acc[np.uint64(2 * NR) + j] = fma(a2, bv, acc[np.uint64(2 * NR) + j])
            acc[np.uint64(3 * NR) + j] = fma(a3, bv, acc[np.uint64(3 * NR) + j])
            acc[np.uint64(4 * NR) + j] = fma(a4, bv, acc[np.uint64(4 * NR) + j])
            acc[np.uint64(5 * NR) + j] = fma(a5, bv, acc[np.uint64(5 * NR) + j])
    for r in range(mr):
        for j in range(nr):
            c[b, i0 + r, j0 + j] = acc[r * NR + j]


@jit
def _pack_b_panel(bm, bp, w, nnt):  # type: ignore[no-untyped-def]
    """Panel ``w`` = (batch b, column tile jt) of B into ``bp``: (K, NR) k-major, zero padded."""
    kk, n = bm.shape[1], bm.shape[2]
    b = w // nnt
    jt = w - b * nnt
    j0 = jt * NR
    nr = min(NR, n - j0)
    base = w * kk * NR
    for k in range(kk):
        bp[base + k * NR:base + k * NR + nr] = bm[b, k, j0:j0 + nr]


@jit
def _item(a, ap, bp, c, w, nitems):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Work item ``w`` = (batch b, block of MC rows): pack its rows of A, then every C tile."""
    m, n = c.shape[1], c.shape[2]
    kk = a.shape[2]
    nmt = (m + MR - 1) // MR
    nnt = (n + NR - 1) // NR
    tiles_per_item = MC // MR
    b = w // nitems
    t_lo = (w - b * nitems) * tiles_per_item
    t_hi = min(nmt, t_lo + tiles_per_item)
    for it in range(t_lo, t_hi):
        i0 = it * MR
        base = (b * nmt + it) * kk * MR
        for r in range(min(MR, m - i0)):
            for k in range(kk):
                ap[base + k * MR + r] = a[b, i0 + r, k]
    for jt in range(nnt):
        j0 = jt * NR
        nr = min(NR, n - j0)
        bbase = (b * nnt + jt) * kk * NR
        for k0 in range(0, kk, KC):
            kc = min(KC, kk - k0)
            for it in range(t_lo, t_hi):
                i0 = it * MR
                abase = ((b * nmt + it) * kk + k0) * MR
                _micro(kc, ap, abase, bp, bbase + k0 * NR, c, b, i0, j0,
                       min(MR, m - i0), nr, k0 > 0)
    if kk == 0:
        for it in range(t_lo, t_hi):
            for r in range(min(MR, m - it * MR)):
                for j in range(n):
                    c[b, it * MR + r, j] = 0.0


@pjit
def _pack_b_parallel(bm, bp, npanels, nnt):  # type: ignore[no-untyped-def]
    for w in numba.prange(npanels):
        _pack_b_panel(bm, bp, w, nnt)


@pjit
def _items_parallel(a, ap, bp, c, nitems_total, nitems):  # type: ignore[no-untyped-def] # noqa: PLR0917
    for w in numba.prange(nitems_total):
        _item(a, ap, bp, c, w, nitems)


@jit
def _gemm_serial(a, bm, ap, bp, c, nnt, nitems):  # type: ignore[no-untyped-def] # noqa: PLR0917
    nb = c.shape[0]
    for w in range(nb * nnt):
        _pack_b_panel(bm, bp, w, nnt)
    for w in range(nb * nitems):
        _item(a, ap, bp, c, w, nitems)


#: Below this many multiply-adds one thread does the whole product: starting a parallel region
#: costs more than it saves (and far more on a busy machine). Changes no bit.
SERIAL_BELOW = 1 << 21


def gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for (batch, M, K) x (batch, K, N) arrays of one float dtype (any strides)."""
    nb, m, kk = a.shape
    n = b.shape[2]
    c = np.empty((nb, m, n), dtype=a.dtype)
    if nb == 0 or m == 0 or n == 0:
        return c
    nmt = (m + MR - 1) // MR
    nnt = (n + NR - 1) // NR
    nitems = (nmt + MC // MR - 1) // (MC // MR)
    ap = np.zeros(nb * nmt * kk * MR, dtype=a.dtype)
    bp = np.zeros(nb * nnt * kk * NR, dtype=a.dtype)
    if nb * m * n * kk < SERIAL_BELOW:
        _gemm_serial(a, b, ap, bp, c, nnt, nitems)
    else:
        _pack_b_parallel(b, bp, nb * nnt, nnt)
        _items_parallel(a, ap, bp, c, nb * nitems, nitems)
    return c
