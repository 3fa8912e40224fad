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

from repops._numba import fma, inline_jit
from repops.math._bits import f64_as_i64, i32_as_f32, i64_as_f64, select

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


@inline_jit
def expm1_poly_f32(r: np.float32) -> np.float32:  # pragma: no cover - compiled
    """``r + r^2 q(r)`` ~ e^r - 1 for ``|r| <= ln2/2`` (shared by exp and expm1)."""
    q = fma(Q5, r, Q4)
    q = fma(q, r, Q3)
    q = fma(q, r, Q2)
    q = fma(q, r, Q1)
    q = fma(q, r, Q0)
    return fma(r * r, q, r)


@inline_jit
def reduce_ln2_f32(x: np.float32) -> tuple[np.float32, np.float32]:  # pragma: no cover
    """``(k, r)`` with ``x = k ln2 + r``, ``k`` an integer as binary32 (spec §1 steps 2-3,
    shared by exp and expm1): only the last fma rounds (see the module docstring)."""
    kf = fma(x, INV_LN2, SHIFT) - SHIFT
    r = fma(-kf, LN2_HI, x)
    return kf, fma(-kf, LN2_LO, r)


@inline_jit
def exp_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """e^x for a float32 ``x`` (measured max error in repops/spec/elementwise.md).

    Written without early returns: every lane computes the main path on a clamped argument
    and the special cases are selected at the end, so loops over arrays vectorise. The bits
    are those of the spec's branches, checked on all 2^32 inputs:

    - the spec's three scalings are one product ``(y * 2^k1) * s2`` with ``s2`` = 1 (normal
      k; the exact multiply by 1 changes nothing), 2^-100 (k < -126) or 2 (k = 128);
    - the clamped arguments give the special results themselves: e^89 overflows to +inf in
      that product, and e^-104 = 0.97 * 2^-150 rounds to +0, so x > OVER and x < UNDER need
      no select of their own (only NaN does).
    """
    xc = select(x > UNDER, x, UNDER)  # NaN -> UNDER: a harmless value, replaced below
    kf, r = reduce_ln2_f32(select(xc < OVER, xc, OVER))
    y = ONE + expm1_poly_f32(r)
    k = np.int32(kf)  # in [-150, 128]
    low = k < np.int32(-126)
    k1 = min(select(low, np.int32(k + np.int32(100)), k), np.int32(127))
    s2 = select(low, TWO_M100, select(k > np.int32(127), TWO, ONE))
    out = (y * i32_as_f32(np.int32((k1 + 127) << 23))) * s2
    return select(np.isnan(x), x + x, out)


@inline_jit
def exp_neg_pair_f32(h: np.float32, lo: np.float32) -> np.float32:  # pragma: no cover
    """e^-(h + lo) for ``lo`` far below ulp(h): ``fma(e, -lo, e)`` with ``e = exp_f32(-h)``,
    i.e. e^-h (1 - lo), whose neglected term lo^2/2 is below 2^-30 relative for |h| < 128.

    Why: the Gaussian e^(-y^2/2) at y = 10 has an exponent of 50; rounding y^2 to binary32
    alone would cost 50 * 2^-24 relative. With ``y^2 = h + lo`` split exactly by an fma, the
    result keeps binary32 accuracy.
    """
    e = exp_f32(-h)
    return fma(e, -lo, e)


# ---------------------------------------------------------------------------------------------
# binary64 cores, used inside functions whose spec computes in binary64 (pow, log1p, the
# tanh-GELU, elu, softplus, ...). Plain mul/add Horner (no fma): binary64 accuracy is far
# beyond what a binary32 result needs, so the simplest written order wins. Not exposed as
# float64 functions.


def _inv_factorials(lo: int, hi: int) -> np.ndarray:
    """1/n! for n = lo..hi, each correctly rounded to binary64 (hex values in the spec)."""
    from fractions import Fraction
    from math import factorial

    return np.array([float(Fraction(1, factorial(n))) for n in range(lo, hi + 1)])


#: e^r ~ sum_{n=0}^{12} r^n/n! for |r| <= ln2/2 (truncation below 2^-50 relative).
EXP64_C = _inv_factorials(0, 12)
#: expm1(x) ~ x + x^2 * sum_{n=0}^{11} x^n/(n+2)! for |x| < ln2/2.
EXPM1_64_C = _inv_factorials(2, 13)
SHIFT64 = _F("0x1.8p52")
#: The encoding of SHIFT64: ``bits(SHIFT64 + k) - SHIFT64_BITS == k`` for ``|k| < 2^51``.
SHIFT64_BITS = 0x4338000000000000
INV_LN2_64 = _F("0x1.71547652b82fep0")
#: ln2 split Cody-Waite style: LN2_HI_64 has 32 significant bits, so kf * LN2_HI_64 is exact
#: (|kf| < 2^11) and x - kf * LN2_HI_64 is exact (Sterbenz); only the LN2_LO_64 step rounds.
LN2_HI_64 = _F("0x1.62e42feep-1")
LN2_LO_64 = _F("0x1.a39ef35793c76p-33")
#: exp64_core returns +inf above and +0 below these (far outside every binary32 result).
OVER64 = 708.0
UNDER64 = -708.0
HALF_LN2_64 = 0.34657359027997264


@inline_jit
def exp64_core(x: float) -> float:  # pragma: no cover - compiled
    """e^x in binary64 to about 2^-50 relative, for the binary64-internal functions."""
    xc = select(x > UNDER64, x, UNDER64)  # branch-free (see exp_f32): NaN -> UNDER64
    xc = select(xc < OVER64, xc, OVER64)
    shifted = xc * INV_LN2_64 + SHIFT64
    kf = shifted - SHIFT64
    r = (xc - kf * LN2_HI_64) - kf * LN2_LO_64
    p = EXP64_C[12]
    for j in range(11, -1, -1):
        p = p * r + EXP64_C[j]
    # k itself is the low part of the shifted sum's encoding (|k| < 2^51): integer steps that
    # vectorise, where converting kf to int64 has no AVX2 instruction (4 scalar conversions).
    k = f64_as_i64(shifted) - SHIFT64_BITS
    out = p * i64_as_f64((k + 1023) << 52)
    out = select(x > OVER64, np.inf, out)
    out = select(x < UNDER64, 0.0, out)
    return select(np.isnan(x), x + x, out)


@inline_jit
def expm1_64_core(x: float) -> float:  # pragma: no cover - compiled
    """e^x - 1 in binary64 without cancellation near 0 (Taylor for |x| < ln2/2)."""
    q = EXPM1_64_C[11]
    for j in range(10, -1, -1):
        q = q * x + EXPM1_64_C[j]
    near = select(np.abs(x) < HALF_LN2_64, x + (x * x) * q, exp64_core(x) - 1.0)
    return select(x == 0.0, x, near)  # keeps the sign of a zero


#: Below EXPM1_LOW, e^x - 1 rounds to -1 in binary32 (e^-18 < 2^-25).
EXPM1_LOW = np.float32(-18.0)
MINUS_ONE = np.float32(-1.0)


@inline_jit
def expm1_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """e^x - 1 for a float32 ``x`` (spec "expm1_f32", pure binary32).

    The reduction of :func:`exp_f32`, then ``2^k (1 + p) - 1 = fma(p, 2^k, 2^k - 1)``: one
    rounding, no cancellation for small ``|x|`` (k = 0 leaves ``p`` itself), and ``2^k - 1``
    is exact for the k that matter (|k| <= 24). Branch-free like exp_f32.
    """
    xc = select(x > EXPM1_LOW, x, EXPM1_LOW)  # NaN -> EXPM1_LOW: replaced below
    kf, r = reduce_ln2_f32(select(xc < OVER, xc, OVER))
    p = expm1_poly_f32(r)
    k = np.int32(kf)  # in [-26, 129]
    kb = min(k, np.int32(127))
    s = i32_as_f32(np.int32((kb + 127) << 23))
    out = fma(p, s, s - ONE)
    out = select(k <= 127, out, out * TWO)
    out = select(x <= OVER, out, INF)
    out = select(x >= EXPM1_LOW, out, MINUS_ONE)
    out = select(x == ZERO, x, out)  # keeps the sign of a zero
    return select(np.isnan(x), x + x, out)
