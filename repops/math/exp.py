"""exp for binary32, from C2 operations only (spec: repops/spec/elementwise.md, "exp_f32").

Method (Cody & Waite, "Software Manual for the Elementary Functions", 1980; the same
reduction as Tang, "Table-driven implementation of the exponential function", TOMS 1989,
without the table): ``x = k*ln2 + r`` with ``k = round(x/ln2)``, ``|r| <= ln2/2``;
``e^r = 1 + (r + r^2 q(r))`` with a degree-5 minimax ``q``; the result is ``2^k e^r`` scaled in
at most two exact-then-one-rounding multiplications so overflow and gradual underflow round
once, as IEEE says (no flush to zero).

Why these steps are exact: ``fma(x, 1/ln2, 0x1.8p23) - 0x1.8p23`` is ``x/ln2`` rounded to an
integer once; ``r1 = fma(-k, LN2_HI, x)`` is exact because its exact value is a multiple of
2^-25 below 0.5 in magnitude (24 bits); only ``r = fma(-k, LN2_LO, r1)`` rounds.
"""

from __future__ import annotations

import numpy as np

from repops._numba import fma, jit
from repops.math._bits import i32_as_f32

_F = float.fromhex
SHIFT = np.float32(_F("0x1.8p23"))
INV_LN2 = np.float32(_F("0x1.715476p+0"))
LN2_HI = np.float32(_F("0x1.62e430p-1"))
LN2_LO = np.float32(_F("-0x1.05c610p-29"))
#: q(r) ~ (e^r - 1 - r) / r^2 on [-0.3466, 0.3466], evaluated Q5 -> Q0 by Horner with fma.
Q0 = np.float32(_F("0x1.000000p-1"))
Q1 = np.float32(_F("0x1.555556p-3"))
Q2 = np.float32(_F("0x1.5554eap-5"))
Q3 = np.float32(_F("0x1.1110c6p-7"))
Q4 = np.float32(_F("0x1.6d4326p-10"))
Q5 = np.float32(_F("0x1.a1517ap-13"))
#: Above OVER the result is +inf; below UNDER it is +0 (exp(-104) < 2^-150 rounds to 0).
OVER = np.float32(89.0)
UNDER = np.float32(-104.0)
ONE = np.float32(1.0)
ZERO = np.float32(0.0)
INF = np.float32(np.inf)
TWO_M100 = np.float32(_F("0x1p-100"))
TWO_127 = np.float32(_F("0x1p127"))
TWO = np.float32(2.0)


@jit
def expm1_poly_f32(r: np.float32) -> np.float32:  # pragma: no cover - compiled
    """``r + r^2 q(r)`` ~ e^r - 1 for ``|r| <= ln2/2`` (shared by exp and expm1)."""
    q = fma(Q5, r, Q4)
    q = fma(q, r, Q3)
    q = fma(q, r, Q2)
    q = fma(q, r, Q1)
    q = fma(q, r, Q0)
    return fma(r * r, q, r)


@jit
def exp_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """e^x for a float32 ``x`` (measured max error in repops/spec/elementwise.md)."""
    if np.isnan(x):
        return x + x
    if x > OVER:
        return INF
    if x < UNDER:
        return ZERO
    kf = fma(x, INV_LN2, SHIFT) - SHIFT
    r = fma(-kf, LN2_HI, x)
    r = fma(-kf, LN2_LO, r)
    y = ONE + expm1_poly_f32(r)
    k = np.int32(kf)
    if k > 127:
        return (y * TWO_127) * TWO
    if k < -126:
        return (y * i32_as_f32(np.int32((k + 100 + 127) << 23))) * TWO_M100
    return y * i32_as_f32(np.int32((k + 127) << 23))
