"""Philox4x32-10, the counter-based generator of SPEC.md C8.

Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11. A block is
a pure function of a 128-bit counter and a 64-bit key: 10 rounds of
``(c0, c1, c2, c3) -> (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))``
with the key bumped by the Weyl constants ``(W0, W1)`` between rounds (mod 2^32). No state, so
any block can be computed by any thread in any order: the output depends only on
(key, counter), never on thread count or chunking.

repops' counter layout (spec elementwise.md, "random numbers"): key = (seed mod 2^32,
seed >> 32); counter = (block mod 2^32, block >> 32, stream mod 2^32, stream >> 32) for
64-bit ``seed``, ``stream`` and ``block``. Word ``j`` of a draw starting at block ``b0`` is
lane ``j mod 4`` of block ``b0 + j // 4``.
"""

from __future__ import annotations

import numba
import numpy as np

from repops._numba import jit
from repops.kernels._rows import row_kernel

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint64(0x9E3779B9)
W1 = np.uint64(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)
SH32 = np.uint64(32)
ROUNDS = 10


@jit
def philox4x32_10(  # noqa: PLR0917 - the algorithm's six words
    c0: np.uint64, c1: np.uint64, c2: np.uint64, c3: np.uint64, k0: np.uint64, k1: np.uint64
) -> tuple[np.uint64, np.uint64, np.uint64, np.uint64]:  # pragma: no cover - compiled
    """One Philox4x32-10 block; every argument and result is a uint64 holding 32 bits."""
    for _ in range(ROUNDS):
        p0 = M0 * c0
        p1 = M1 * c2
        n0 = ((p1 >> SH32) ^ c1 ^ k0) & MASK32
        n1 = p1 & MASK32
        n2 = ((p0 >> SH32) ^ c3 ^ k1) & MASK32
        n3 = p0 & MASK32
        c0, c1, c2, c3 = n0, n1, n2, n3
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    return c0, c1, c2, c3


@row_kernel
def philox_words(  # pragma: no cover - compiled
    seed: np.uint64, stream: np.uint64, block0: np.uint64, out: np.ndarray
) -> None:
    """Fill the uint32 array ``out`` with words 0..len-1 of the draw starting at ``block0``."""
    n = out.size
    k0 = seed & MASK32
    k1 = seed >> SH32
    s0 = stream & MASK32
    s1 = stream >> SH32
    nblocks = (n + 3) // 4
    for b in numba.prange(nblocks):
        ctr = block0 + np.uint64(b)
        r0, r1, r2, r3 = philox4x32_10(ctr & MASK32, ctr >> SH32, s0, s1, k0, k1)
        j = 4 * b
        out[j] = np.uint32(r0)
        if j + 1 < n:
            out[j + 1] = np.uint32(r1)
        if j + 2 < n:
            out[j + 2] = np.uint32(r2)
        if j + 3 < n:
            out[j + 3] = np.uint32(r3)
