"""Blocked matrix-product core: ``C[b] = A[b] @ B[b]`` with the C5 order for every element.

Why this shape: SPEC.md C5 fixes each element as one fma chain over k increasing, starting from
+0.0. That leaves the *schedule* free as long as every element's chain is untouched, so this is
the GotoBLAS/BLIS layering (Goto & van de Geijn, "Anatomy of High-Performance Matrix
Multiplication", ACM TOMS 2008; Low et al., "Analytical Modeling Is Enough for High-Performance
BLIS", ACM TOMS 2016) reduced to what the order allows:

* The register tile (:mod:`repops.kernels._gemm_tile`, ``MR x NR`` sized per ISA) keeps its
  accumulators in vector registers for a whole k-block; A is broadcast, B is loaded as vectors.
* B is packed once per product into panels of ``NR`` columns, k-major, zero padded, the
  panels of one k-block side by side (one contiguous B block per k-block), unless the
  product has few rows and B's rows are contiguous: then B is read in place (packing would
  cost more than it saves) and only a ragged last panel is packed. A micro-panels are read in
  place when A's rows or columns are contiguous, and packed (``MR`` rows, k-major, zero
  padded) otherwise and for the ragged last rows: by each work item as it reaches them, or
  (large products, and any on one thread) once for the product before the items run.
* Loop order inside a work item (BLIS's, with the roles of A and B swapped because C is
  row-major): for each k-block, for each A micro-panel (``MR x KC``, resident in L1), for each
  B panel of the item (the ``KC x NB`` block, resident in L2): one tile.
* k is blocked only when K is long (``KC`` bounded by L1): between k-blocks each accumulator is
  parked in C and reloaded — a float store and load are exact, so the bits equal the unblocked
  chain. The chain of one element is never split across threads.
* Work items are (batch, block of rows, block of B panels); ``prange`` runs over items, so
  threads only ever own disjoint output elements. The sizes of all these blocks are chosen
  per product in :mod:`repops.kernels.matmul_plan`.

Operands arrive with their own strides (any layout, no copy) and are read through typed
pointers at element offsets (:mod:`repops.kernels._raw`); edge tiles run on a private
``MR x NR`` scratch tile (padded rows and columns compute on zeros and are dropped), so no tile
reads or writes outside its arrays. The bias of addmm/baddbmm (and alpha, beta) is applied to
each tile right after its last k-block, while it is in cache.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numba
import numpy as np

from repops._numba import jit, thread_count
from repops.kernels._gemm_tile import NARROW, WIDE, micro_tile, tile_dims, tile_shape
from repops.kernels._raw import at_address, keep, load, ptr, store
from repops.kernels._rows import RowKernel
from repops.kernels._target import numba_target
from repops.kernels.matmul_pack import (
    A_PACK_GROUP,
    pack_a_column_group,
    pack_a_panel,
    pack_b_panel,
    packed_a_stride,
)
from repops.kernels.matmul_plan import (
    _ADDR_A,
    _ADDR_B,
    _ADDR_C,
    _ADDR_E,
    _EPI,
    _K,
    _KCB,
    _M,
    _MB,
    _N,
    _NIB,
    _NJB,
    _PACK_A,
    _PACK_B,
    _PB,
    _SA0,
    _SA1,
    _SA2,
    _SB0,
    _SB1,
    _SE0,
    _SE1,
    _SE2,
    A_PACKED_AHEAD,
    A_PACKED_PER_ITEM,
    block_plan,
    new_plan,
)
from repops.kernels.matmul_workspace import give_back_workspace, take_workspace

#: Below this many multiply-adds (about 100^3, ~30 us of one core's work) the calling thread
#: does the whole product: waking the thread pool costs more than it saves there (measured:
#: 64^3 breaks even on two threads, 128^3 takes 0.6x the serial time). On a busy machine a
#: parallel region can wait for a descheduled worker; torch takes the same risk from a similar
#: size on. Changes no bit.
SERIAL_BELOW = 1 << 20

#: Epilogue flags: scale by alpha; add the bias; add beta times the bias.
EPI_ALPHA = 1
EPI_BIAS = 2
EPI_BETA_BIAS = 4

#: An operand handed to the core: the address of its first element and its three strides
#: in elements (any layout; 0 for a broadcast dim).
Operand = tuple[int, Sequence[int]]


@jit
def _edge_tile(kind, kc, a_src, b_src, pc, coff, ldc, rows, cols, resume, ptile, nr):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """A tile cut by the edge of C: computed on the scratch tile, its valid part copied.
    ``a_src`` is (pointer, offset, row stride, k stride), ``b_src`` (pointer, offset, k stride).
    """
    u = np.uint64
    unr, uc, ul = u(nr), u(coff), u(ldc)
    if resume:
        for r in range(u(rows)):
            for j in range(u(cols)):
                store(ptile, r * unr + j, load(pc, uc + r * ul + j))
    micro_tile(kind, kc, a_src[0], a_src[1], a_src[2], a_src[3], b_src[0], b_src[1], b_src[2],
               ptile, 0, nr, resume)
    for r in range(u(rows)):
        for j in range(u(cols)):
            store(pc, uc + r * ul + j, load(ptile, r * unr + j))


@jit
def _epilogue(pc, coff, ldc, rows, cols, pe, eoff, plan, scal):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """spec/linalg.md §2 addmm steps 2-4 on a finished block of C: ``p = alpha * p`` (one
    rounding), then ``out = bias + p`` or ``out = (beta * bias) + p`` (one rounding each).
    ``pe[eoff + r*se1 + j*se2]`` is the bias element of row r, column j (broadcast strides)."""
    u = np.uint64
    flags = plan[_EPI]
    alpha, beta = scal[0], scal[1]
    se1, se2, ul, uc, ue = u(plan[_SE1]), u(plan[_SE2]), u(ldc), u(coff), u(eoff)
    for r in range(u(rows)):
        o = uc + r * ul
        e = ue + r * se1
        for j in range(u(cols)):
            p = load(pc, o + j)
            if flags & EPI_ALPHA:
                p = alpha * p
            if flags & EPI_BIAS:
                p = load(pe, e + j * se2) + p
            elif flags & EPI_BETA_BIAS:
                q = beta * load(pe, e + j * se2)
                p = q + p
            store(pc, o + j, p)


@jit
def _item(kind, plan, w, ppk, ppa, scal):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Work item ``w``: its rows of A and its B panels, every tile over all of k, then the
    epilogue (bias, alpha, beta) while the tile is still in cache. ``ppk``: packed B;
    ``ppa``: packed A (when the plan packs it)."""
    m, n, kk = plan[_M], plan[_N], plan[_K]
    nib, njb, mb, pb, kcb = plan[_NIB], plan[_NJB], plan[_MB], plan[_PB], plan[_KCB]
    pack_a, pack_b = plan[_PACK_A], plan[_PACK_B] != 0
    mr, nr = tile_dims(kind, scal)
    npan = (n + nr - 1) // nr
    mpan = (m + mr - 1) // mr
    bi = w // (nib * njb)
    rest = w - bi * nib * njb
    ib = rest // njb
    jb = rest - ib * njb
    i0 = ib * mb
    i1 = min(m, i0 + mb)
    p0 = jb * pb
    p1 = min(npan, p0 + pb)
    epi = plan[_EPI] != 0
    nkb = (kk + kcb - 1) // kcb
    pa, pbm = at_address(plan[_ADDR_A], scal), at_address(plan[_ADDR_B], scal)
    pc, pe = at_address(plan[_ADDR_C], scal), at_address(plan[_ADDR_E], scal)
    if kk == 0:
        j1 = min(n, p1 * nr)
        for i in range(i0, i1):
            for j in range(p0 * nr, j1):
                store(pc, (bi * m + i) * n + j, 0.0)  # +0.0: the C5 value of an empty chain
        if epi:
            _epilogue(pc, (bi * m + i0) * n + p0 * nr, n, i1 - i0, j1 - p0 * nr, pe,
                      bi * plan[_SE0] + i0 * plan[_SE1] + p0 * nr * plan[_SE2], plan, scal)
        return
    # Private to the item: one packed A micro-panel (under A_PANEL_BYTES, so a heap block
    # rather than fresh pages; none when A was packed ahead) and the scratch tile of the edges.
    ap = np.empty(mr * kcb if pack_a != A_PACKED_AHEAD else 0, dtype=scal.dtype)
    tile = np.empty(mr * nr, dtype=scal.dtype)
    pap, ptile = ptr(ap), ptr(tile)
    ragged = n - (npan - 1) * nr < nr
    for k0 in range(0, kk, kcb):
        kc = min(kcb, kk - k0)
        for ir in range(i0, i1, mr):
            rows = min(mr, i1 - ir)
            # The A micro-panel: packed before the items, packed here (zero padded; so are
            # the ragged last rows of an A read in place), or read in place.
            if pack_a == A_PACKED_AHEAD:
                a_src = (ppa, (bi * mpan + ir // mr) * packed_a_stride(kk, mr, scal)
                         + k0 * mr, 1, mr)
            elif pack_a == A_PACKED_PER_ITEM or rows < mr:
                pack_a_panel(pa, plan, bi, ir, rows, k0, kc, mr, pap, 0)
                a_src = (pap, 0, 1, mr)
            else:
                a_src = (pa, bi * plan[_SA0] + ir * plan[_SA1] + k0 * plan[_SA2],
                         plan[_SA1], plan[_SA2])
            for jp in range(p0, p1):
                j0 = jp * nr
                cols = min(nr, n - j0)
                # The B panel: packed, or read in place (its ragged last panel is packed).
                if pack_b:
                    b_src = (ppk, ((bi * nkb + k0 // kcb) * npan + jp) * kcb * nr, nr)
                elif ragged and jp == npan - 1:
                    b_src = (ppk, (bi * kk + k0) * nr, nr)
                else:
                    b_src = (pbm, bi * plan[_SB0] + k0 * plan[_SB1] + j0, plan[_SB1])
                coff = (bi * m + ir) * n + j0
                if rows == mr and cols == nr:
                    micro_tile(kind, kc, a_src[0], a_src[1], a_src[2], a_src[3],
                               b_src[0], b_src[1], b_src[2], pc, coff, n, k0 > 0)
                else:
                    _edge_tile(kind, kc, a_src, b_src, pc, coff, n, rows, cols, k0 > 0,
                               ptile, nr)
                if epi and k0 + kc == kk:
                    eoff = bi * plan[_SE0] + ir * plan[_SE1] + j0 * plan[_SE2]
                    _epilogue(pc, coff, n, rows, cols, pe, eoff, plan, scal)
    keep(ap, tile)


def _gemm_body(kind, scal, threads, nb, m, kk, n, addr_a, sa0, sa1, sa2,  # type: ignore[no-untyped-def] # noqa: PLR0917
               addr_b, sb0, sb1, sb2, addr_c, addr_e, se0, se1, se2, epi, addr_ws, ws_len):
    """Plan, block, pack B (all panels, or only the ragged last one) and, when the plan says
    so, A (:data:`~repops.kernels.matmul_plan.A_PACKED_AHEAD`), then run every work item
    (``prange`` in the parallel twin; ``threads`` is what the blocking balances the items
    for). Operands are read by address: one compiled body per dtype serves every layout.

    The packed operands go to the caller's workspace (``ws_len`` elements at ``addr_ws``,
    see :mod:`repops.kernels.matmul_workspace`) when they fit, and to fresh arrays otherwise.
    Returns the elements the packing needed (B's, then A's from the next cache line), so the
    caller can grow its workspace for the next product. Where the packing lands changes no
    bit."""
    plan = new_plan(nb, m, kk, n, addr_a, sa0, sa1, sa2, addr_b, sb0, sb1, sb2, addr_c,
                     addr_e, se0, se1, se2, epi, threads)
    block_plan(kind, plan, scal)
    mr, nr = tile_dims(kind, scal)
    npan = (n + nr - 1) // nr
    mpan = (m + mr - 1) // mr
    kcb = plan[_KCB]
    nkb = (kk + kcb - 1) // kcb
    pack_a, pack_b = plan[_PACK_A] == A_PACKED_AHEAD, plan[_PACK_B] != 0
    # Packed B: batch, k-block, panel, then the block's k rows of NR values (see
    # pack_b_panel); a ragged last panel alone: batch, then its k rows.
    ragged = n - (npan - 1) * nr < nr
    nbp = nb * nkb * npan * kcb * nr if pack_b else (nb * kk * nr if ragged else 0)
    # Packed A (ahead): batch, row panel, then its k rows of MR values (zero padded rows).
    pstride = packed_a_stride(kk, mr, scal)
    nap = nb * mpan * pstride if pack_a else 0
    # A starts on a cache line of its own, past B.
    line = 64 // scal.itemsize
    a_at = (nbp + line - 1) // line * line
    need = a_at + nap
    fits = need <= ws_len
    bp = np.empty(0 if fits else nbp, dtype=scal.dtype)
    ap = np.empty(0 if fits else nap, dtype=scal.dtype)
    pa, pbm = at_address(addr_a, scal), at_address(addr_b, scal)
    if fits:
        ppk = at_address(addr_ws, scal)
        ppa = at_address(addr_ws + a_at * scal.itemsize, scal)
    else:
        ppk, ppa = ptr(bp), ptr(ap)
    if pack_b:
        for t in numba.prange(nb * npan):
            bi = t // npan
            jp = t - bi * npan
            pack_b_panel(pbm, plan, bi, jp, nr, ppk, (bi * nkb * npan + jp) * kcb * nr,
                          npan * kcb * nr)
    elif ragged:
        for bi in numba.prange(nb):
            pack_b_panel(pbm, plan, bi, npan - 1, nr, ppk, bi * kk * nr, kcb * nr)
    if pack_a and sa1 == 1 and kind == WIDE:
        # Groups of at most A_PACK_GROUP panels, at least one per thread. (A column-major A
        # is only packed under the short column of the 6-row float32 WIDE tile: see
        # matmul_plan.A_PACK_BELOW_BYTES.)
        ngrp = max((mpan + A_PACK_GROUP - 1) // A_PACK_GROUP, (threads + nb - 1) // nb)
        grp = (mpan + ngrp - 1) // ngrp
        ngrp = (mpan + grp - 1) // grp
        for t in numba.prange(nb * ngrp):
            bi = t // ngrp
            g = t - bi * ngrp
            pack_a_column_group(pa, plan, bi, g * grp, min(mpan, (g + 1) * grp),
                                 tile_dims(WIDE, scal)[0], ppa, pstride)
    elif pack_a:
        for t in numba.prange(nb * mpan):
            bi = t // mpan
            ip = t - bi * mpan
            pack_a_panel(pa, plan, bi, ip * mr, min(mr, m - ip * mr), 0, kk, mr, ppa,
                          (bi * mpan + ip) * pstride)
    for w in numba.prange(nb * plan[_NIB] * plan[_NJB]):
        _item(kind, plan, w, ppk, ppa, scal)
    keep(bp, ap)
    return need


_GEMM = RowKernel(_gemm_body)

#: The serial body, for compiled callers that run one product per parallel item of their own
#: (:mod:`repops.kernels.attention_heads`); arguments as :func:`_gemm_body`, ``threads`` = 1
#: and no workspace (0, 0): their packings are small, and a workspace serves one product.
gemm_serial = _GEMM.serial


@functools.cache
def _narrow_cols(dtype: np.dtype) -> int:
    """``NR`` of the narrow tile for ``dtype``: products with at most this many columns use it."""
    _, vectors, lanes = tile_shape(NARROW, numba_target(), np.dtype(dtype).itemsize * 8)
    return vectors * lanes


def product_kind(n: int, dtype: np.dtype) -> int:
    """The tile family (NARROW or WIDE) of a product with ``n`` columns, as
    :func:`product_into` picks it."""
    return NARROW if n <= _narrow_cols(dtype) else WIDE


def _epilogue_flags(has_bias: bool, beta: float, alpha: float) -> int:
    """The epilogue of ``beta * bias + alpha * p`` (spec/linalg.md §2). Multiplications by 1
    are the identity bit for bit and skipped; ``beta == 0`` never reads the bias."""
    flags = EPI_ALPHA if alpha != 1 else 0
    if has_bias and beta != 0:
        flags |= EPI_BIAS if beta == 1 else EPI_BETA_BIAS
    return flags


@functools.cache
def unit_scalars(dtype: np.dtype) -> np.ndarray:
    """T(1), T(1): alpha and beta of a plain product (never written by the kernels)."""
    return np.ones(2, dtype=dtype)


def _scalars(dtype: np.dtype, alpha: float, beta: float) -> np.ndarray:
    """T(alpha), T(beta): one rounding each; the shared unit pair for a plain product."""
    if alpha == 1 and beta == 1:
        return unit_scalars(dtype)
    return np.array([alpha, beta], dtype=dtype)


_NO_OPERAND: Operand = (0, (0, 0, 0))


def product_into(
    c_address: int,
    shape: tuple[int, int, int, int],
    a: Operand,
    b: Operand,
    bias: Operand | None,
    *,
    dtype: np.dtype,
    beta: float = 1.0,
    alpha: float = 1.0,
) -> None:
    """``C = beta * bias + alpha * (A @ B)`` (spec/linalg.md §2) written to the C-contiguous
    (batch, M, N) array at ``c_address``; ``shape`` is (batch, M, K, N). A, B and the bias are
    given by address and element strides (:data:`Operand`, three strides each; a broadcast
    bias dim has stride 0); the caller keeps all four alive for the call. ``dtype`` is a
    ``numpy.dtype`` (float32 or float64). Without a bias and with ``alpha == 1`` this is the
    C5 product.

    Why addresses: one compiled body per dtype then serves every layout and every caller
    (numpy arrays, torch tensors), instead of one per combination of operand layouts.
    """
    nb, m, kk, n = shape
    flags = _epilogue_flags(bias is not None, beta, alpha)
    e = bias if bias is not None and flags & (EPI_BIAS | EPI_BETA_BIAS) else _NO_OPERAND
    (addr_a, (sa0, sa1, sa2)), (addr_b, (sb0, sb1, sb2)), (addr_e, (se0, se1, se2)) = a, b, e
    _run(c_address, nb, m, kk, n, addr_a, sa0, sa1, sa2, addr_b, sb0, sb1, sb2, dtype,
         _scalars(dtype, alpha, beta), addr_e, se0, se1, se2, flags)


def plain_product_into(  # noqa: PLR0917 - the positional form is the point
    c_address: int, nb: int, m: int, kk: int, n: int, addr_a: int, sa0: int, sa1: int,
    sa2: int, addr_b: int, sb0: int, sb1: int, sb2: int, dtype: np.dtype,
) -> None:
    """:func:`product_into` of the C5 product (no bias, alpha = 1), with the operands' address
    and three strides given one by one: the call of every plain mm and bmm, where the general
    entry's argument handling costs 1 us (2% of a 128^3 product)."""
    _run(c_address, nb, m, kk, n, addr_a, sa0, sa1, sa2, addr_b, sb0, sb1, sb2, dtype,
         unit_scalars(dtype), 0, 0, 0, 0, 0)


def _run(  # noqa: PLR0917
    c_address: int, nb: int, m: int, kk: int, n: int, addr_a: int, sa0: int, sa1: int,
    sa2: int, addr_b: int, sb0: int, sb1: int, sb2: int, dtype: np.dtype, scal: np.ndarray,
    addr_e: int, se0: int, se1: int, se2: int, flags: int,
) -> None:
    """Run the serial or the parallel body on one product (nothing to do when it is empty)."""
    if nb * m * n == 0:
        return
    kind = product_kind(n, dtype)
    # numba's thread count is per calling thread (read in compiled code, it would keep the
    # kernel out of the disk cache); with one thread the serial twin skips the pool's region.
    threads = 1 if nb * m * n * kk < SERIAL_BELOW else thread_count()
    run = _GEMM.serial if threads == 1 else _GEMM.parallel
    itemsize = dtype.itemsize
    ws = take_workspace()
    try:
        room = ws.elements(itemsize)
        need = run(kind, scal, threads, nb, m, kk, n, addr_a, sa0, sa1, sa2, addr_b, sb0, sb1,
                   sb2, c_address, addr_e, se0, se1, se2, flags, ws.address, room)
        if need > room:
            ws.grow(need, itemsize)
    finally:
        give_back_workspace(ws)


def array_operand(x: np.ndarray, shape: tuple[int, int, int] | None = None) -> Operand:
    """A numpy array as an :data:`Operand`; with ``shape``, broadcast to it (numpy's rules)."""
    if shape is not None:
        x = np.broadcast_to(x, shape)
    return x.ctypes.data, [s // x.itemsize for s in x.strides]


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    bias: np.ndarray | None = None,
    beta: float = 1.0,
    alpha: float = 1.0,
) -> np.ndarray:
    """``beta * bias + alpha * (a @ b)`` in the order of spec/linalg.md §2, for (batch, M, K) x
    (batch, K, N) numpy arrays of one float dtype (any strides); ``bias`` (optional, same dtype)
    broadcasts to (batch, M, N). Without a bias and with ``alpha == 1`` it is the C5 product."""
    nb, m, kk = a.shape
    n = b.shape[2]
    c = np.empty((nb, m, n), dtype=a.dtype)
    bias_op = None if bias is None or beta == 0 else array_operand(bias, (nb, m, n))
    product_into(c.ctypes.data, (nb, m, kk, n), array_operand(a), array_operand(b), bias_op,
                 dtype=a.dtype, beta=beta, alpha=alpha)
    return c


@jit
def _epilogue_all(scal, nb, m, n, addr_c, addr_e, se0, se1, se2, epi):  # type: ignore[no-untyped-def] # noqa: PLR0917
    plan = new_plan(nb, m, 0, n, 0, 0, 0, 0, 0, 0, 0, 0, addr_c, addr_e, se0, se1, se2, epi, 1)
    pc, pe = at_address(addr_c, scal), at_address(addr_e, scal)
    for bi in range(nb):
        _epilogue(pc, bi * m * n, n, m, n, pe, bi * se0, plan, scal)


def epilogue_into(
    c_address: int,
    shape: tuple[int, int, int],
    bias: Operand | None,
    *,
    dtype: np.dtype,
    beta: float = 1.0,
    alpha: float = 1.0,
) -> None:
    """The epilogue of :func:`product_into` applied in place to a finished C-contiguous
    (batch, M, N) product computed elsewhere (single-column products run one chain per row)."""
    nb, m, n = shape
    flags = _epilogue_flags(bias is not None, beta, alpha)
    if flags and nb * m * n:
        addr_e, (se0, se1, se2) = bias if bias is not None else _NO_OPERAND
        _epilogue_all(_scalars(dtype, alpha, beta), nb, m, n, c_address, addr_e, se0, se1,
                      se2, flags)
