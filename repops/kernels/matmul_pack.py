"""Packing the operands of the matrix-product core (:mod:`repops.kernels.matmul_core`): B into
panels of NR columns, A into micro-panels of MR rows, both k-major and zero padded.

Why a module of its own: packing only moves values (an exact copy), so it is where the core
adapts its memory traffic to a machine without touching a bit; the order of every element's
chain is the core's business alone. Indices are unsigned (no negative-index wraparound, so the
copies vectorise); the caller keeps every array alive while its pointer is in use.
"""

from __future__ import annotations

import numpy as np

from repops._numba import inline_jit, jit
from repops.kernels._raw import load, store
from repops.kernels.matmul_plan import _K, _KCB, _M, _N, _SA0, _SA1, _SA2, _SB0, _SB1, _SB2

#: Row panels of a column-major A packed ahead together (k outermost, one group per task):
#: each k then reads up to 64 * MR values of a column, whole cache lines. Measured packing
#: 256 x 2048 (Zen 3, AVX2 tile): groups of 1 / 8 / 43 panels 0.42 / 0.30 / 0.19 ms.
A_PACK_GROUP = 64


@jit
def pack_b_panel(pbm, plan, bi, jp, nr, pdst, dst, block_stride):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Columns ``jp*nr ..`` of B[bi], all of k, zero padded: row k of the panel goes to
    ``pdst[dst + (k // KC) * block_stride + (k % KC) * nr]`` (``KC`` the plan's k-block).

    Why k-block-major: the panels one k-block of a work item sweeps then lie next to each
    other, one contiguous B block. With each panel's whole k contiguous instead, the block's
    pieces sit one panel (K * NR values) apart; at K = 1024 and NR = 16 that is 64 KiB, the
    size of one way of a 512 KiB 8-way L2, so with the pages physically contiguous (huge
    pages) every piece of the block maps to the same half of the L2 sets. Measured at 1024^3
    on one thread (Zen 3, 512 KiB L2; best of a run, three runs each): 79-80 GFLOP/s with
    whole panels, 81-93 with k-block-major ones; at 1024 x 1040 x 1024 (panels 66.5 KiB
    apart) the old layout gave 79-91.

    Unsigned index arithmetic: no negative-index wraparound, so the copies vectorise.
    """
    u = np.uint64
    kk, n, kcb = u(plan[_K]), u(plan[_N]), u(plan[_KCB])
    s1, s2 = u(plan[_SB1]), u(plan[_SB2])
    unr, ustride = u(nr), u(block_stride)
    j0 = u(jp) * unr
    cols = min(unr, n - j0)
    src = u(bi) * u(plan[_SB0]) + j0 * s2
    for k0 in range(u(0), kk, kcb):
        kc = min(kcb, kk - k0)
        udst = u(dst) + (k0 // kcb) * ustride
        ksrc = src + k0 * s1
        if s2 == 1:  # rows of B contiguous: copy row slices
            for k in range(kc):
                o = udst + k * unr
                row = ksrc + k * s1
                for jj in range(cols):
                    store(pdst, o + jj, load(pbm, row + jj))
                for jj in range(cols, unr):
                    store(pdst, o + jj, 0.0)
        else:  # e.g. a transposed operand: read down each column
            for jj in range(cols):
                col = ksrc + jj * s2
                for k in range(kc):
                    store(pdst, udst + k * unr + jj, load(pbm, col + k * s1))
            for jj in range(cols, unr):
                for k in range(kc):
                    store(pdst, udst + k * unr + jj, 0.0)


@jit
def pack_a_panel(pa, plan, bi, r0, rows, k0, kc, mr, pap, dst):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Rows ``r0:r0+rows`` x k ``k0:k0+kc`` of A[bi] into the micro-panel
    ``pap[dst + k*mr + r]``; rows past ``rows`` are zero."""
    u = np.uint64
    s1, s2 = u(plan[_SA1]), u(plan[_SA2])
    umr, ukc, urows, ud = u(mr), u(kc), u(rows), u(dst)
    src = u(bi) * u(plan[_SA0]) + u(r0) * s1 + u(k0) * s2
    if s2 == 1:  # row-major A: read along k
        for r in range(urows):
            row = src + r * s1
            for k in range(ukc):
                store(pap, ud + k * umr + r, load(pa, row + k))
    else:  # e.g. a transposed operand: read down the rows
        for k in range(ukc):
            col = src + k * s2
            for r in range(urows):
                store(pap, ud + k * umr + r, load(pa, col + r * s1))
    for r in range(urows, umr):
        for k in range(ukc):
            store(pap, ud + k * umr + r, 0.0)


@inline_jit
def pack_a_column_group(pa, plan, bi, ip0, ip1, mr, ppa, pstride):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Row panels ``ip0:ip1`` of a column-major A[bi], all of k, into ``ppa``: panel ``ip``
    at ``(bi * MPAN + ip) * pstride``, its row k at ``+ k * mr`` (rows past M are zero).

    Why k outermost: a column of A is contiguous, so each k reads the group's rows as a few
    whole cache lines, once; packing one panel at a time read MR values per line and came
    back for the rest from L2. Why inlined, with ``mr`` a constant of the caller: the copy
    of MR values then unrolls; with MR a runtime value the loop is 3-4x slower (measured
    packing 256 x 2048 on Zen 3: 0.73 -> 0.19 ms)."""
    u = np.uint64
    m, kk = u(plan[_M]), u(plan[_K])
    umr = u(mr)
    mpan = (m + umr - 1) // umr
    s2, ups = u(plan[_SA2]), u(pstride)
    src = u(bi) * u(plan[_SA0])
    full = min(u(ip1), m // umr)  # panels ip0:full have all MR rows (full >= ip0)
    base = (u(bi) * mpan) * ups
    for k in range(kk):
        col = src + k * s2
        for ip in range(u(ip0), full):
            dst = base + ip * ups + k * umr
            r0 = col + ip * umr
            for r in range(umr):
                store(ppa, dst + r, load(pa, r0 + r))
        for ip in range(full, u(ip1)):  # the ragged last panel
            dst = base + ip * ups + k * umr
            rows = m - ip * umr
            for r in range(rows):
                store(ppa, dst + r, load(pa, col + ip * umr + r))
            for r in range(rows, umr):
                store(ppa, dst + r, 0.0)


@inline_jit
def packed_a_stride(kk, mr, scal):  # type: ignore[no-untyped-def]
    """Elements from one row panel of A packed ahead to the next: its ``K x MR`` values and one
    cache line, so that the panels a group writes at one k do not all map to one L1 set
    (``K * MR`` floats is a multiple of 4 KiB at K = 2048)."""
    return kk * mr + 64 // scal.itemsize
