"""Exact argument reduction by pi/2 for huge binary32 arguments (Payne & Hanek, "Radian
reduction for trigonometric functions", SIGNUM Newsletter 18(1), 1983).

Why: for ``|x| >= 2^24`` a binary32 ``x`` is an integer ``M * 2^E`` (``M < 2^24``,
``1 <= E <= 104``) and ``k = round(x * 2/pi)`` no longer fits the Cody-Waite scheme. Since
``M`` is an integer, ``x * 2/pi mod 4 = M * (2^E * 2/pi mod 4) mod 4``, and
``2^E * 2/pi mod 4`` is just the bits of 2/pi from bit ``E-1`` on. We take 128 of them
(``W``, 2 integer bits), form ``M * W mod 2^128`` with 32-bit limbs (exact integer
arithmetic), and read the quadrant and the fraction from the top.

Spec (elementwise.md, "sin/cos reduction, huge arguments"): with ``V = M*W mod 2^128``,
``X = V >> 64`` (unsigned 64-bit), ``q = ((X + 2^61) mod 2^64) >> 62``,
``F = (X - q*2^62) mod 2^64`` read as signed int64, ``L = V mod 2^64``;
``f = double(F) * 2^-62 + double(L) * 2^-126`` (int-to-double conversions round to nearest),
``r = f * PIO2`` in binary64. Then ``x = (4j + q) pi/2 + r`` up to the 2/pi bits dropped
(relative error of ``r`` below 2^-50 for every binary32 x).
"""

from __future__ import annotations

import numpy as np

from repops._numba import inline_jit
from repops.math._bits import f32_as_i32

#: Bits 0..255 of 2/pi (bit i has weight 2^-i), big-endian 32-bit limbs.
TWO_OVER_PI_LIMBS = np.array(
    [
        0x517CC1B7, 0x27220A94, 0xFE13ABE8, 0xFA9A6EE0,
        0x6DB14ACC, 0x9E21C820, 0xFF28B1D5, 0xEF5DE2B0,
    ],
    dtype=np.uint64,
)
PIO2 = float.fromhex("0x1.921fb54442d18p+0")
MASK32 = np.uint64(0xFFFFFFFF)
TWO_M62 = float.fromhex("0x1p-62")
TWO_M126 = float.fromhex("0x1p-126")


@inline_jit
def reduce_huge(x: np.float32) -> tuple[int, float]:  # pragma: no cover - compiled
    """(q, r) with |x| = (4j + q) pi/2 + r, q in 0..3, |r| <= pi/4 (for |x| >= 2^24, finite)."""
    ix = f32_as_i32(x) & 0x7FFFFFFF
    m = np.uint64((ix & 0x007FFFFF) | 0x00800000)
    e = (ix >> 23) - 150  # x = m * 2^e, e >= 1 here
    start = e - 1
    q0 = start // 32
    sh = np.uint64(start % 32)
    w = np.zeros(4, dtype=np.uint64)
    for k in range(4):
        hi = (TWO_OVER_PI_LIMBS[q0 + k] << sh) & MASK32
        lo = TWO_OVER_PI_LIMBS[q0 + k + 1] >> (np.uint64(32) - sh) if sh > 0 else np.uint64(0)
        w[k] = hi | lo
    # V = m * W mod 2^128, limb by limb from the least significant.
    p3 = m * w[3]
    p2 = m * w[2] + (p3 >> np.uint64(32))
    p1 = m * w[1] + (p2 >> np.uint64(32))
    p0 = m * w[0] + (p1 >> np.uint64(32))
    xhi = ((p0 & MASK32) << np.uint64(32)) | (p1 & MASK32)
    xlo = ((p2 & MASK32) << np.uint64(32)) | (p3 & MASK32)
    q = (xhi + np.uint64(1 << 61)) >> np.uint64(62)
    frac = np.int64(xhi - (q << np.uint64(62)))
    f = np.float64(frac) * TWO_M62 + np.float64(xlo) * TWO_M126
    return np.int64(q), f * PIO2
