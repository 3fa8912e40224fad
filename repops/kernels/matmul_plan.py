"""The blocking plan of one matrix product (:mod:`repops.kernels.matmul_core`): an int64 array
of the product's sizes, strides and addresses, and the blocking chosen for it.

Why a module of its own: the blocking is where the core adapts to a machine (cache sizes, the
tile of the ISA, the thread count) and nothing here touches a value: every element stays the
C5 chain whatever is chosen. The numbers below are the tuning; each says what it was measured
on.
"""

from __future__ import annotations

import numpy as np

from repops._numba import jit
from repops.kernels._gemm_tile import tile_dims

#: Bytes of one packed A micro-panel (``MR x KC``): it stays in L1 while the tile sweeps B.
A_PANEL_BYTES = 16 * 1024
#: A column-major A (the transposed activations of a weight gradient) whose k stride is
#: over A_IN_PLACE_K_STRIDE elements is packed when one k-step of the tile reads fewer than
#: A_PACK_BELOW_BYTES: every k-step then lands on another page for a few bytes. Measured on
#: the weight gradient 768x2048x256 (GFLOP/s, 1 / 2 threads): the AVX2 tile (6 rows, 24
#: bytes) 82 / 120 in place, 94 / 136 packed; the AVX-512 tile (12 rows, 48 bytes) 106 / 189
#: in place, 79 / 141 packed.
A_IN_PLACE_K_STRIDE = 64
A_PACK_BELOW_BYTES = 32
#: How A's micro-panels are read (the plan's ``_PACK_A``): in place; packed by each work item
#: as it reaches them; or packed once for the whole product before the items run. Packing
#: ahead saves packing the rows again in every item that shares them, so only a product with
#: several B blocks per row block packs ahead (the weight gradient 256 x 2048 x 1024 has
#: four), and on several threads only from A_PACK_AHEAD_MIN multiply-adds on: below that the
#: extra parallel region costs more (a few us: 128^3 with a transposed A, 0.78 -> 0.73x torch).
A_IN_PLACE, A_PACKED_PER_ITEM, A_PACKED_AHEAD = 0, 1, 2
A_PACK_AHEAD_MIN = 1 << 24
#: Bytes of the B block one work item sweeps per k-block (``KC x NB``): stays in L2.
B_BLOCK_BYTES = 512 * 1024
#: A micro-panels (of MR rows) per work item when there is enough work for every thread.
ROW_PANELS = 8
#: Work items per thread to aim for (load balance on a busy machine).
ITEMS_PER_THREAD = 4
#: B is read in place (not packed) when it has contiguous rows and the product has at most
#: this many rows: each B element then feeds too few multiply-adds to pay for its copy.
DIRECT_B_ROWS = 48
#: ... or at most this many rows and a K of at most DIRECT_B_MAX_K: packing is then a fixed
#: cost (a copy of B and one more parallel region) the short k-blocks never earn back. Measured
#: on AVX-512 and AVX2 builds: 128^3 in 0.8x the time on two threads, 128x256x768 in 0.8x; a K
#: of 1024 or more (B's rows then reach past L2 between reuses) is faster packed.
DIRECT_B_SHORT_ROWS = 128
DIRECT_B_MAX_K = 768
# Fields of the int64 ``plan`` array: the product (:func:`new_plan`), then its blocking
# (:func:`block_plan`). Strides are in elements; addresses are the operands' first elements.
_M, _N, _K, _SA0, _SA1, _SA2, _SB0, _SB1, _SB2 = range(9)
_NIB, _NJB, _MB, _PB, _KCB, _PACK_A, _PACK_B = range(9, 16)
_SE0, _SE1, _SE2, _EPI = range(16, 20)
_NBATCH, _ADDR_A, _ADDR_B, _ADDR_C, _ADDR_E, _THREADS = range(20, 26)
_PLAN_FIELDS = 26


@jit
def new_plan(nb, m, kk, n, addr_a, sa0, sa1, sa2, addr_b, sb0, sb1, sb2,  # type: ignore[no-untyped-def] # noqa: PLR0917
              addr_c, addr_e, se0, se1, se2, epi, threads):
    """The int64 plan of one product (its blocking fields are filled by :func:`block_plan`).

    Built in compiled code from plain integers: numba passes an int argument in a few tens of
    nanoseconds, while filling a numpy array from Python costs more than a 64^3 product's
    packing."""
    plan = np.zeros(_PLAN_FIELDS, dtype=np.int64)
    plan[_NBATCH], plan[_M], plan[_K], plan[_N] = nb, m, kk, n
    plan[_ADDR_A], plan[_SA0], plan[_SA1], plan[_SA2] = addr_a, sa0, sa1, sa2
    plan[_ADDR_B], plan[_SB0], plan[_SB1], plan[_SB2] = addr_b, sb0, sb1, sb2
    plan[_ADDR_E], plan[_SE0], plan[_SE1], plan[_SE2] = addr_e, se0, se1, se2
    plan[_ADDR_C], plan[_EPI], plan[_THREADS] = addr_c, epi, threads
    return plan


@jit
def busiest_load(nib, njb, per, pb, mpan, npan, threads):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Tiles (row panels x B panels) of the busiest thread when the ``nib x njb`` items of one
    batch are split as ``prange`` splits them: runs in order, the first ``items % threads``
    threads one item longer. A ragged edge tile counts as a whole one (it costs as much)."""
    items = nib * njb
    q, r = divmod(items, threads)
    busiest = 0
    w = 0
    for t in range(threads):
        load = 0
        for _ in range(q + 1 if t < r else q):
            ib = w // njb
            jb = w - ib * njb
            rows = min(mpan, (ib + 1) * per) - ib * per
            cols = min(npan, (jb + 1) * pb) - jb * pb
            load += rows * cols
            w += 1
        busiest = max(busiest, load)
    return busiest


@jit
def block_plan(kind, plan, scal):  # type: ignore[no-untyped-def]
    """Fill the blocking fields of ``plan`` — cache sizes and load balance only; no value
    depends on the blocking."""
    nb, m, n, kk = plan[_NBATCH], plan[_M], plan[_N], plan[_K]
    mr, nr = tile_dims(kind, scal)
    size = scal.itemsize
    kc_max = max(16, A_PANEL_BYTES // (mr * size))
    nkb = max(1, (kk + kc_max - 1) // kc_max)
    kcb = max(1, (kk + nkb - 1) // nkb)
    npan = (n + nr - 1) // nr
    pb_l2 = max(1, min(npan, B_BLOCK_BYTES // (kcb * nr * size)))
    pb = pb_l2
    njb = (npan + pb - 1) // pb
    pb = (npan + njb - 1) // njb
    mpan = (m + mr - 1) // mr
    per = min(ROW_PANELS, mpan)
    threads = plan[_THREADS]
    want = threads * ITEMS_PER_THREAD if threads > 1 else 1
    while per > 1 and ((mpan + per - 1) // per) * njb * nb < want:
        per -= 1
    nib = (mpan + per - 1) // per
    few = threads > 1 and nib * njb * nb < 2 * want
    # Still few items (a small product: 128^3 has 22 row panels on the 6-row AVX2 tile):
    # split the B panels too, so the static split of the items evens out.
    while few and pb > 1 and nib * njb * nb < 2 * want:
        pb -= 1
        njb = (npan + pb - 1) // pb
    pb = (npan + njb - 1) // njb  # even blocks: 4 panels in two items are 2 + 2, not 3 + 1
    njb = (npan + pb - 1) // pb
    cpb = (npan + threads - 1) // threads
    if few and nb == 1 and npan >= threads and cpb <= pb_l2:
        # ... or give each thread all rows and its own B panels (each block still within
        # B_BLOCK_BYTES), when that loads the busiest thread less: 128^3 on two threads with
        # the AVX2 tile is 4 + 4 panels of 22 row panels each, where the row split above
        # gives one thread 12 of the 22 row panels (measured: 36 -> 33 us).
        cnjb = (npan + cpb - 1) // cpb
        if busiest_load(1, cnjb, mpan, cpb, mpan, npan, threads) < busiest_load(
                nib, njb, per, pb, mpan, npan, threads):
            nib, per, njb, pb = 1, mpan, cnjb, cpb
    plan[_NIB] = nib
    plan[_NJB], plan[_MB], plan[_PB], plan[_KCB] = njb, per * mr, pb, kcb
    # A micro-panels are read in place when A's rows or columns are contiguous (a tile's
    # k-step then touches one or MR cache lines that stay in L1 while it sweeps the B panels),
    # except a column-major A with a long k stride under a short tile column: see
    # A_PACK_BELOW_BYTES.
    short_column = mr * size < A_PACK_BELOW_BYTES and plan[_SA2] > A_IN_PLACE_K_STRIDE
    if plan[_SA2] == 1 or (plan[_SA1] == 1 and not short_column):
        plan[_PACK_A] = A_IN_PLACE
    elif njb > 1 and (threads == 1 or nb * m * n * kk >= A_PACK_AHEAD_MIN):
        plan[_PACK_A] = A_PACKED_AHEAD
    else:
        plan[_PACK_A] = A_PACKED_PER_ITEM
    plan[_PACK_B] = not (plan[_SB2] == 1 and (
        m <= DIRECT_B_ROWS or (m <= DIRECT_B_SHORT_ROWS and kk <= DIRECT_B_MAX_K)))
