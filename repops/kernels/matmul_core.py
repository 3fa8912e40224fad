"""Blocked matrix-product core: ``C[b] = A[b] @ B[b]`` with the C5 order for every element.

Why this shape: SPEC.md C5 fixes each element as one fma chain over k increasing, starting from
+0.0. That leaves the *schedule* free as long as every element's chain is untouched, so this is
the GotoBLAS/BLIS layering (Goto & van de Geijn, "Anatomy of High-Performance Matrix
Multiplication", ACM TOMS 2008; Low et al., "Analytical Modeling Is Enough for High-Performance
BLIS", ACM TOMS 2016) reduced to what the order allows:

* The register tile (:mod:`repops.kernels._gemm_tile`, ``MR x NR`` sized per ISA) keeps its
  accumulators in vector registers for a whole k-block; A is broadcast, B is loaded as vectors.
* B is packed once per product into panels of ``NR`` columns, k-major, zero padded, unless the
  product has few rows and B's rows are contiguous: then B is read in place (packing would
  cost more than it saves) and only a ragged last panel is packed. A micro-panels are read in
  place when A's rows or columns are contiguous, and packed (``MR`` rows, k-major, zero
  padded) otherwise and for the ragged last rows.
* Loop order inside a work item (BLIS's, with the roles of A and B swapped because C is
  row-major): for each k-block, for each A micro-panel (``MR x KC``, resident in L1), for each
  B panel of the item (the ``KC x NB`` block, resident in L2): one tile.
* k is blocked only when K is long (``KC`` bounded by L1): between k-blocks each accumulator is
  parked in C and reloaded — a float store and load are exact, so the bits equal the unblocked
  chain. The chain of one element is never split across threads.
* Work items are (batch, block of rows, block of B panels); ``prange`` runs over items, so
  threads only ever own disjoint output elements.

Operands arrive as flat views with element strides (any layout, no copy); edge tiles run on a
private ``MR x NR`` scratch tile (padded rows and columns compute on zeros and are dropped), so
no tile reads or writes outside its arrays.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.lib.stride_tricks import as_strided

from repops._numba import jit
from repops.kernels._gemm_tile import NARROW, WIDE, micro_tile, tile_dims, tile_shape
from repops.kernels._rows import RowKernel
from repops.kernels._target import numba_target

#: Bytes of one packed A micro-panel (``MR x KC``): it stays in L1 while the tile sweeps B.
A_PANEL_BYTES = 16 * 1024
#: Bytes of the B block one work item sweeps per k-block (``KC x NB``): stays in L2.
B_BLOCK_BYTES = 512 * 1024
#: A micro-panels (of MR rows) per work item when there is enough work for every thread.
ROW_PANELS = 8
#: Work items per thread to aim for (load balance on a busy machine).
ITEMS_PER_THREAD = 4
#: B is read in place (not packed) when it has contiguous rows and the product has at most
#: this many rows: each B element then feeds too few multiply-adds to pay for its copy.
DIRECT_B_ROWS = 48
#: Below this many multiply-adds one thread does the whole product: starting a parallel region
#: costs more than it saves (and far more on a busy machine). Changes no bit.
SERIAL_BELOW = 1 << 21

# Fields of the int64 ``plan`` array handed to the compiled code.
_M, _N, _K, _SA0, _SA1, _SA2, _SB0, _SB1, _SB2 = range(9)
_NIB, _NJB, _MB, _PB, _KCB, _PACK_A, _PACK_B = range(9, 16)
_PLAN_FIELDS = 16


@jit
def _pack_b_panel(bf, plan, bi, jp, nr, bp, dst):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Columns ``jp*nr ..`` of B[bi], all of k, into ``bp[dst + k*nr + j]``, zero padded.

    Index arithmetic is unsigned throughout: numba then emits no negative-index wraparound,
    which would keep LLVM from vectorising the copies (20x slower).
    """
    u = np.uint64
    kk, n = u(plan[_K]), u(plan[_N])
    s1, s2 = u(plan[_SB1]), u(plan[_SB2])
    unr, udst = u(nr), u(dst)
    j0 = u(jp) * unr
    cols = min(unr, n - j0)
    src = u(bi) * u(plan[_SB0]) + j0 * s2
    if s2 == 1:  # rows of B contiguous: copy row slices
        for k in range(kk):
            o = udst + k * unr
            row = src + k * s1
            for jj in range(cols):
                bp[o + jj] = bf[row + jj]
            for jj in range(cols, unr):
                bp[o + jj] = 0.0
    else:  # e.g. a transposed operand: read down each column
        for jj in range(cols):
            col = src + jj * s2
            for k in range(kk):
                bp[udst + k * unr + jj] = bf[col + k * s1]
        for jj in range(cols, unr):
            for k in range(kk):
                bp[udst + k * unr + jj] = 0.0


@jit
def _pack_a_panel(af, plan, bi, r0, rows, k0, kc, mr, ap, dst):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Rows ``r0:r0+rows`` x k ``k0:k0+kc`` of A[bi] into ``ap[dst + k*mr + r]``; rows past
    ``rows`` are zero. Unsigned index arithmetic, as in :func:`_pack_b_panel`."""
    u = np.uint64
    s1, s2 = u(plan[_SA1]), u(plan[_SA2])
    umr, ukc, urows, udst = u(mr), u(kc), u(rows), u(dst)
    src = u(bi) * u(plan[_SA0]) + u(r0) * s1 + u(k0) * s2
    if s2 == 1:  # row-major A: read along k
        for r in range(urows):
            row = src + r * s1
            for k in range(ukc):
                ap[udst + k * umr + r] = af[row + k]
    else:  # e.g. a transposed operand: read down the rows
        for k in range(ukc):
            col = src + k * s2
            o = udst + k * umr
            for r in range(urows):
                ap[o + r] = af[col + r * s1]
    for r in range(urows, umr):
        for k in range(ukc):
            ap[udst + k * umr + r] = 0.0


@jit
def _edge_tile(kind, kc, asrc, aoff, ars, acs, bsrc, boff, brs, c, coff, ldc, rows, cols,  # type: ignore[no-untyped-def] # noqa: PLR0917
               resume, tile):
    """A tile cut by the edge of C: computed on the scratch ``tile``, its valid part copied."""
    u = np.uint64
    nr = tile.shape[0] // tile_dims(kind, tile)[0]
    unr, uc, ul = u(nr), u(coff), u(ldc)
    if resume:
        for r in range(u(rows)):
            for j in range(u(cols)):
                tile[r * unr + j] = c[uc + r * ul + j]
    micro_tile(kind, kc, asrc, aoff, ars, acs, bsrc, boff, brs, tile, 0, nr, resume)
    for r in range(u(rows)):
        for j in range(u(cols)):
            c[uc + r * ul + j] = tile[r * unr + j]


@jit
def _item(kind, af, bf, bp, cf, plan, w):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Work item ``w``: its rows of A and its B panels, every tile over all of k."""
    m, n, kk = plan[_M], plan[_N], plan[_K]
    nib, njb, mb, pb, kcb = plan[_NIB], plan[_NJB], plan[_MB], plan[_PB], plan[_KCB]
    pack_a, pack_b = plan[_PACK_A] != 0, plan[_PACK_B] != 0
    mr, nr = tile_dims(kind, cf)
    npan = (n + nr - 1) // nr
    bi = w // (nib * njb)
    rest = w - bi * nib * njb
    ib = rest // njb
    jb = rest - ib * njb
    i0 = ib * mb
    i1 = min(m, i0 + mb)
    p0 = jb * pb
    p1 = min(npan, p0 + pb)
    if kk == 0:
        for i in range(i0, i1):
            for j in range(p0 * nr, min(n, p1 * nr)):
                cf[(bi * m + i) * n + j] = 0.0  # +0.0: the C5 value of an empty chain
        return
    # Private to the item: one packed A micro-panel (under A_PANEL_BYTES, so a heap block
    # rather than fresh pages) and the scratch tile of the edges.
    ap = np.empty(mr * kcb, dtype=cf.dtype)
    tile = np.empty(mr * nr, dtype=cf.dtype)
    ragged = n - (npan - 1) * nr < nr
    for k0 in range(0, kk, kcb):
        kc = min(kcb, kk - k0)
        for ir in range(i0, i1, mr):
            rows = min(mr, i1 - ir)
            # The A micro-panel: packed (zero padded) or read in place.
            if pack_a or rows < mr:
                _pack_a_panel(af, plan, bi, ir, rows, k0, kc, mr, ap, 0)
                aoff = 0
                asrc, ars, acs = ap, 1, mr
            else:
                aoff = bi * plan[_SA0] + ir * plan[_SA1] + k0 * plan[_SA2]
                asrc, ars, acs = af, plan[_SA1], plan[_SA2]
            for jp in range(p0, p1):
                j0 = jp * nr
                cols = min(nr, n - j0)
                # The B panel: packed, or read in place (its ragged last panel is packed).
                if pack_b:
                    bsrc, boff, brs = bp, ((bi * npan + jp) * kk + k0) * nr, nr
                elif ragged and jp == npan - 1:
                    bsrc, boff, brs = bp, (bi * kk + k0) * nr, nr
                else:
                    bsrc, boff, brs = bf, bi * plan[_SB0] + k0 * plan[_SB1] + j0, plan[_SB1]
                coff = (bi * m + ir) * n + j0
                if rows == mr and cols == nr:
                    micro_tile(kind, kc, asrc, aoff, ars, acs, bsrc, boff, brs, cf, coff, n,
                               k0 > 0)
                else:
                    _edge_tile(kind, kc, asrc, aoff, ars, acs, bsrc, boff, brs, cf, coff, n,
                               rows, cols, k0 > 0, tile)


def _gemm_body(kind, af, bf, bp, cf, plan, nbatch):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Pack B (all panels, or only the ragged last one), then run every work item (``prange``
    in the parallel twin)."""
    nr = tile_dims(kind, cf)[1]
    n, kk = plan[_N], plan[_K]
    npan = (n + nr - 1) // nr
    if plan[_PACK_B] != 0:
        for t in numba.prange(nbatch * npan):
            bi = t // npan
            _pack_b_panel(bf, plan, bi, t - bi * npan, nr, bp, t * kk * nr)
    elif n - (npan - 1) * nr < nr:
        for bi in numba.prange(nbatch):
            _pack_b_panel(bf, plan, bi, npan - 1, nr, bp, bi * kk * nr)
    for w in numba.prange(nbatch * plan[_NIB] * plan[_NJB]):
        _item(kind, af, bf, bp, cf, plan, w)


_GEMM = RowKernel(_gemm_body)


def _flat(x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """A 1-D view from ``x``'s first element over every element it reaches, and its strides
    in elements (torch strides are whole elements and never negative)."""
    strides = [s // x.itemsize for s in x.strides]
    span = 1 + sum((d - 1) * s for d, s in zip(x.shape, strides, strict=True))
    return as_strided(x, shape=(span,), strides=(x.itemsize,)), strides


def _tile(kind: int, dtype: np.dtype) -> tuple[int, int]:
    """``(MR, NR)`` of tile ``kind``, as the compiled micro-kernel has them."""
    mr, nv, w = tile_shape(kind, numba_target(), np.dtype(dtype).itemsize * 8)
    return mr, nv * w


def _plan(kind: int, a: np.ndarray, b: np.ndarray,
          threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat operands and the blocking of one product — cache sizes and load balance only, no
    value depends on it."""
    nb, m, kk = a.shape
    n = b.shape[2]
    mr, nr = _tile(kind, a.dtype)
    size = a.itemsize
    af, sa = _flat(a)
    bf, sb = _flat(b)
    kc_max = max(16, A_PANEL_BYTES // (mr * size))
    nkb = max(1, -(-kk // kc_max))
    kcb = max(1, -(-kk // nkb))
    npan = -(-n // nr)
    pb = max(1, min(npan, B_BLOCK_BYTES // (kcb * nr * size)))
    njb = -(-npan // pb)
    pb = -(-npan // njb)
    mpan = -(-m // mr)
    per = min(ROW_PANELS, mpan)
    while per > 1 and -(-mpan // per) * njb * nb < threads * ITEMS_PER_THREAD:
        per -= 1
    nib = -(-mpan // per)
    pack_b = not (sb[2] == 1 and m <= DIRECT_B_ROWS)
    # A micro-panels are read in place when A's rows or columns are contiguous (then a tile's
    # k-step touches one or MR cache lines that stay in L1 while it sweeps the B panels).
    pack_a = not (sa[2] == 1 or sa[1] == 1)
    plan = np.array([m, n, kk, *sa, *sb, nib, njb, per * mr, pb, kcb, pack_a, pack_b],
                    dtype=np.int64)
    return plan, af, bf


def gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for (batch, M, K) x (batch, K, N) arrays of one float dtype (any strides)."""
    nb, m, kk = a.shape
    n = b.shape[2]
    c = np.empty((nb, m, n), dtype=a.dtype)
    if c.size == 0:
        return c
    kind = NARROW if n <= _tile(NARROW, a.dtype)[1] else WIDE
    serial = nb * m * n * kk < SERIAL_BELOW
    threads = 1 if serial else numba.get_num_threads()
    plan, af, bf = _plan(kind, a, b, threads)
    nr = _tile(kind, a.dtype)[1]
    npan = -(-n // nr)
    bp = np.empty((nb * npan if plan[_PACK_B] else nb) * kk * nr, dtype=a.dtype)
    run = _GEMM.serial if serial else _GEMM.parallel
    run(kind, af, bf, bp, c.reshape(-1), plan, nb)
    return c
