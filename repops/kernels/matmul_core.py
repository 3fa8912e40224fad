"""Blocked matrix-product core: ``C[b] = A[b] @ B[b]`` with the C5 order for every element.

Why this shape: SPEC.md C5 fixes each element as one fma chain over k increasing, starting from
+0.0. That leaves the *schedule* free as long as every element's chain is untouched, so this is
the classic GotoBLAS layering (Goto & van de Geijn, "Anatomy of High-Performance Matrix
Multiplication", ACM TOMS 2008) reduced to what the order allows:

* A is packed into micro-panels of ``MR`` rows (k-major), B into micro-panels of ``NR`` columns
  (``NR_NARROW`` when N is small), k-major; the padding is zeros and padded rows/columns are
  never stored.
* The micro-kernel keeps an ``MR x NR`` tile of running accumulators in a private stack buffer,
  which LLVM promotes to vector registers for the whole k loop, and applies, for each k, one
  ``fma`` per element. The loop over the ``NR`` columns is what LLVM vectorises; the vector
  width only decides how many *independent* elements one instruction handles, never the order
  within one element (with ``NUMBA_CPU_NAME=generic`` the same loop is SSE2 code calling a
  correctly rounded software fma: slower, same bits).
* k is blocked by ``KC`` so a B micro-panel stays in cache while all the row tiles of a work
  item stream past it. Between k-blocks the running
  accumulator of every element is parked in C (a float store/load is exact) and resumed, so
  the bits equal the unblocked chain. K is never split across threads.
* ``prange`` runs over A tiles and B panels (packing), then over work items (batch, block of
  MC rows, block of NB column panels), each computing its own C tiles: independent output
  elements only.
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
#: Column panels (of NR) per parallel work item: items are (batch, MC rows, NB*NR columns).
NB = 8
#: Accumulators per micro-tile.
TILE = MR * NR
#: Column width of the narrow micro-tile, used when N <= NARROW_MAX (less zero padding).
NR_NARROW = 16
NARROW_MAX = 32
TILE_NARROW = MR * NR_NARROW


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
def _micro_narrow(kc, ap, aoff, bp, boff, c, b, i0, j0, mr, nr, resume):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """As :func:`_micro`, for an MR x NR_NARROW tile (products with few columns).

    A copy on purpose, not a shared body with the width as an argument: the tile width must be
    a compile-time constant of each function, so that LLVM sizes the private accumulator tile,
    unrolls the column loop and keeps the whole tile in vector registers across the k loop.
    The fma chain of every element is the same in both (C5), so the bits are too.
    """
    acc = numba.carray(_stack_tile(c, TILE_NARROW), (TILE_NARROW,))
    for j in range(TILE_NARROW):
        acc[j] = 0.0  # +0.0: the C5 starting value
    if resume:
        for r in range(mr):
            for j in range(nr):
                acc[r * NR_NARROW + j] = c[b, i0 + r, j0 + j]
    u_nr = np.uint64(NR_NARROW)
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
            acc[np.uint64(2 * NR_NARROW) + j] = fma(a2, bv, acc[np.uint64(2 * NR_NARROW) + j])
            acc[np.uint64(3 * NR_NARROW) + j] = fma(a3, bv, acc[np.uint64(3 * NR_NARROW) + j])
            acc[np.uint64(4 * NR_NARROW) + j] = fma(a4, bv, acc[np.uint64(4 * NR_NARROW) + j])
            acc[np.uint64(5 * NR_NARROW) + j] = fma(a5, bv, acc[np.uint64(5 * NR_NARROW) + j])
    for r in range(mr):
        for j in range(nr):
            c[b, i0 + r, j0 + j] = acc[r * NR_NARROW + j]


@jit
def _pack_a_tile(a, ap, w, nmt):  # type: ignore[no-untyped-def]
    """Tile ``w`` = (batch b, row tile it) of A into ``ap``: (K, MR) k-major, zero padded."""
    m, kk = a.shape[1], a.shape[2]
    b = w // nmt
    i0 = (w - b * nmt) * MR
    base = w * kk * MR
    for r in range(min(MR, m - i0)):
        for k in range(kk):
            ap[base + k * MR + r] = a[b, i0 + r, k]


@jit
def _pack_b_panel(bm, bp, w, nnt, pw):  # type: ignore[no-untyped-def]
    """Panel ``w`` = (batch b, column tile jt) of B into ``bp``: (K, pw) k-major, zero padded."""
    kk, n = bm.shape[1], bm.shape[2]
    b = w // nnt
    j0 = (w - b * nnt) * pw
    nr = min(pw, n - j0)
    base = w * kk * pw
    for k in range(kk):
        bp[base + k * pw:base + k * pw + nr] = bm[b, k, j0:j0 + nr]


@jit
def _item(ap, bp, c, kk, w, nib, njb, pw):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Work item ``w`` = (batch b, block of MC rows, block of panels of width pw): its C tiles."""
    m, n = c.shape[1], c.shape[2]
    nmt = (m + MR - 1) // MR
    nnt = (n + pw - 1) // pw
    panels = NB * NR // pw
    b = w // (nib * njb)
    rest = w - b * nib * njb
    ib = rest // njb
    jb = rest - ib * njb
    t_lo = ib * (MC // MR)
    t_hi = min(nmt, t_lo + MC // MR)
    p_lo = jb * panels
    p_hi = min(nnt, p_lo + panels)
    if kk == 0:
        for i in range(t_lo * MR, min(m, t_hi * MR)):
            for j in range(p_lo * pw, min(n, p_hi * pw)):
                c[b, i, j] = 0.0
        return
    for jt in range(p_lo, p_hi):
        j0 = jt * pw
        nr = min(pw, n - j0)
        bbase = (b * nnt + jt) * kk * pw
        for k0 in range(0, kk, KC):
            kc = min(KC, kk - k0)
            for it in range(t_lo, t_hi):
                i0 = it * MR
                abase = ((b * nmt + it) * kk + k0) * MR
                if pw == NR_NARROW:
                    _micro_narrow(kc, ap, abase, bp, bbase + k0 * pw, c, b, i0, j0,
                                  min(MR, m - i0), nr, k0 > 0)
                else:
                    _micro(kc, ap, abase, bp, bbase + k0 * pw, c, b, i0, j0,
                           min(MR, m - i0), nr, k0 > 0)


@pjit
def _pack_parallel(a, bm, ap, bp, pw):  # type: ignore[no-untyped-def]
    nb, m = a.shape[0], a.shape[1]
    n = bm.shape[2]
    nmt = (m + MR - 1) // MR
    nnt = (n + pw - 1) // pw
    for w in numba.prange(nb * (nmt + nnt)):
        if w < nb * nmt:
            _pack_a_tile(a, ap, w, nmt)
        else:
            _pack_b_panel(bm, bp, w - nb * nmt, nnt, pw)


@pjit
def _items_parallel(ap, bp, c, kk, nib, njb, pw):  # type: ignore[no-untyped-def] # noqa: PLR0917
    for w in numba.prange(c.shape[0] * nib * njb):
        _item(ap, bp, c, kk, w, nib, njb, pw)


@jit
def _gemm_serial(a, bm, ap, bp, c, nib, njb, pw):  # type: ignore[no-untyped-def] # noqa: PLR0917
    nb, m, kk = a.shape
    n = bm.shape[2]
    nmt = (m + MR - 1) // MR
    nnt = (n + pw - 1) // pw
    for w in range(nb * nmt):
        _pack_a_tile(a, ap, w, nmt)
    for w in range(nb * nnt):
        _pack_b_panel(bm, bp, w, nnt, pw)
    for w in range(nb * nib * njb):
        _item(ap, bp, c, kk, w, nib, njb, pw)


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
    pw = NR_NARROW if n <= NARROW_MAX else NR  # panel width; changes no bit
    nmt = (m + MR - 1) // MR
    nnt = (n + pw - 1) // pw
    nib = (nmt + MC // MR - 1) // (MC // MR)
    panels = NB * NR // pw
    njb = (nnt + panels - 1) // panels
    ap = np.zeros(nb * nmt * kk * MR, dtype=a.dtype)
    bp = np.zeros(nb * nnt * kk * pw, dtype=a.dtype)
    if nb * m * n * kk < SERIAL_BELOW:
        _gemm_serial(a, b, ap, bp, c, nib, njb, pw)
    else:
        _pack_parallel(a, b, ap, bp, pw)
        _items_parallel(ap, bp, c, kk, nib, njb, pw)
    return c
