"""Natural logarithm for binary32, from C2 operations only (spec: elementwise.md, "log_f32").

Method (the decomposition of fdlibm/musl ``logf``, with a plain minimax polynomial instead of
their ``s = f/(2+f)`` division): ``x = 2^e * m`` with ``m`` in ``[sqrt(2)/2, sqrt(2))`` found
from the encoding (subnormals are first scaled by 2^23, exactly); ``f = m - 1`` is exact
(Sterbenz); ``log(x) = e*ln2 + f + f^2 q(f)`` with a degree-9 minimax ``q``.

Combination: ``lo = fma(f*f, q, e*LN2_LO)``. For ``e`` in {-1, 0, 1} the result is
``fma(e, LN2_HI, f) + lo``, whose fma is exact (a multiple of 2^-24 below 1 in magnitude), so
only the last addition rounds. For ``|e| >= 2`` it is ``fma(e, LN2_HI, f + lo)``: the inner
sum rounds at the ulp of a number below 0.42, small against the ulp of a result above 1.
"""

from __future__ import annotations

import numpy as np

from repops._numba import fma, inline_jit
from repops.math._bits import f32_as_i32, f64_as_i64, i32_as_f32, i64_as_f64, ieee_div, select

_F = float.fromhex
LN2_HI = np.float32(_F("0x1.62e430p-1"))
LN2_LO = np.float32(_F("-0x1.05c610p-29"))
#: Bits of float32(sqrt(2)/2): subtracting them centres the significand on [sqrt2/2, sqrt2).
SQRT_HALF_BITS = 0x3F3504F3
#: q(f) ~ (log1p(f) - f) / f^2 on [sqrt2/2 - 1, sqrt2 - 1], Horner Q9 -> Q0 with fma.
Q0 = np.float32(_F("-0x1.000000p-1"))
Q1 = np.float32(_F("0x1.55554ep-2"))
Q2 = np.float32(_F("-0x1.fffff4p-3"))
Q3 = np.float32(_F("0x1.99a136p-3"))
Q4 = np.float32(_F("-0x1.555f60p-3"))
Q5 = np.float32(_F("0x1.237dfcp-3"))
Q6 = np.float32(_F("-0x1.fc0442p-4"))
Q7 = np.float32(_F("0x1.e2dfa4p-4"))
Q8 = np.float32(_F("-0x1.dd7416p-4"))
Q9 = np.float32(_F("0x1.1c57dap-4"))
ONE = np.float32(1.0)
TWO_23 = np.float32(_F("0x1p23"))
MIN_NORMAL = np.float32(_F("0x1p-126"))
INF = np.float32(np.inf)
NAN = np.float32(np.nan)


@inline_jit
def log1p_poly_f32(f: np.float32) -> np.float32:  # pragma: no cover - compiled
    """``q(f)`` with ``log1p(f) ~ f + f^2 q(f)`` for ``f`` in [sqrt2/2 - 1, sqrt2 - 1]."""
    q = fma(Q9, f, Q8)
    q = fma(q, f, Q7)
    q = fma(q, f, Q6)
    q = fma(q, f, Q5)
    q = fma(q, f, Q4)
    q = fma(q, f, Q3)
    q = fma(q, f, Q2)
    q = fma(q, f, Q1)
    return fma(q, f, Q0)


@inline_jit
def log_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """log(x) for a float32 ``x``: NaN for x < 0 or NaN, -inf for +-0, +inf for +inf."""
    # Branch-free (see exp_f32): every lane runs the main path, special cases are selected.
    subnormal = x < MIN_NORMAL
    xs = select(subnormal, x * TWO_23, x)
    ix = np.int32(f32_as_i32(xs) - SQRT_HALF_BITS)
    e = (ix >> 23) + select(subnormal, np.int32(-23), np.int32(0))
    m = i32_as_f32(np.int32((ix & 0x007FFFFF) + SQRT_HALF_BITS))
    f = m - ONE
    ef = np.float32(e)
    lo = fma(f * f, log1p_poly_f32(f), ef * LN2_LO)
    r = select((e >= -1) & (e <= 1), fma(ef, LN2_HI, f) + lo, fma(ef, LN2_HI, f + lo))
    r = select(x == INF, x, r)
    r = select(x == 0, -INF, r)
    r = select(x < 0, NAN, r)
    return select(np.isnan(x), x + x, r)


# ---------------------------------------------------------------------------------------------
# binary64 core (plain mul/add, no fma; see the note in repops/math/exp.py).

#: 2 * atanh(s) = 2s * sum_{n=0}^{8} s^(2n) / (2n+1), |s| <= 0.1716 (truncation < 2^-51).
LOG64_C = np.array([1.0 / (2 * n + 1) for n in range(9)])
SQRT_HALF_BITS64 = 0x3FE6A09E667F3BCD
LN2_64 = float.fromhex("0x1.62e42fefa39efp-1")
#: log1p_f32 uses x - x^2/2 below this magnitude, where 1 + x is not exact in binary64.
LOG1P_TINY = float.fromhex("0x1p-29")


@inline_jit
def log64_core(x: float) -> float:  # pragma: no cover - compiled
    """log(x) in binary64 for positive normal finite ``x`` (about 2^-50 relative error).

    ``x = 2^e m``, ``m`` in [sqrt2/2, sqrt2), ``f = m - 1``, ``s = f / (2 + f)``,
    ``log x = e*ln2 + 2s * sum s^(2n)/(2n+1)`` (the atanh series; Abramowitz & Stegun 4.1.27).
    """
    ix = f64_as_i64(x) - SQRT_HALF_BITS64
    e = ix >> 52
    m = i64_as_f64((ix & 0x000FFFFFFFFFFFFF) + SQRT_HALF_BITS64)
    f = m - 1.0
    s = ieee_div(f, 2.0 + f)
    z = s * s
    p = LOG64_C[8]
    for j in range(7, -1, -1):
        p = p * z + LOG64_C[j]
    return np.float64(e) * LN2_64 + (2.0 * s) * p


@inline_jit
def log1p_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """log(1 + x) for float32 ``x``, in binary64 (``1 + x`` is exact there for |x| >= 2^-29)."""
    xd = np.float64(x)  # branch-free (see exp_f32); 1 + xd <= 0 is computed, then replaced
    near = select(np.abs(xd) < LOG1P_TINY, xd - (xd * xd) * 0.5, log64_core(1.0 + xd))
    r = np.float32(near)
    r = select(x == INF, x, r)
    r = select(x == np.float32(-1.0), -INF, r)
    r = select(x < np.float32(-1.0), NAN, r)
    return select(np.isnan(x), x + x, r)
