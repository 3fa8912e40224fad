"""sin and cos for binary32, computed in binary64 (spec: elementwise.md, "sin/cos").

Reduction of ``a = |x|``: for ``a < 2^24`` a three-part Cody-Waite reduction
(Cody & Waite 1980): ``k = round(a * 2/pi)`` by the 1.5*2^52 shifter,
``r = ((a - k*P1) - k*P2) - k*P3`` with P1, P2 of 29 significant bits (so ``k*P1``,
``k*P2`` and ``a - k*P1`` are exact for k < 2^24) and P3 the binary64 rest; for
``a >= 2^24`` the exact Payne-Hanek reduction of repops/math/_payne_hanek.py.
Evaluation on ``|r| <= pi/4`` by Taylor polynomials (terms to r^17 and r^18; truncation
below 2^-60): ``S(r) = r + (r z) PS(z)``, ``C(r) = (1 - z/2) + (z z) PC(z)``, ``z = r*r``.
Quadrant ``n = k mod 4`` picks +-S or +-C; sin is made odd by sign symmetry.

Both polynomials are evaluated and the quadrant's is selected, without a branch:
``sin_near_f32``/``cos_near_f32`` are that whole function for every argument below 2^24 and
the non-finite ones, so array loops over them vectorise (10x faster than the former branching
form on AVX2). ``sin_f32``/``cos_f32`` branch to the Payne-Hanek reduction (a loop over a
table) for huge arguments (:func:`reduce_pio2`); a chunk holding one runs them.
"""

from __future__ import annotations

from fractions import Fraction
from math import factorial

import numpy as np

from repops._numba import inline_jit
from repops.math._bits import f64_as_i64, select
from repops.math._payne_hanek import reduce_huge

TWO_OVER_PI = float.fromhex("0x1.45f306dc9c883p-1")
SHIFT64 = float.fromhex("0x1.8p52")
P1 = float.fromhex("0x1.921fb54000000p+0")
P2 = float.fromhex("0x1.10b4611000000p-30")
P3 = float.fromhex("0x1.4c4c6628b80dcp-59")
HUGE = float.fromhex("0x1p24")
#: The smallest binary32 magnitude that needs the Payne-Hanek reduction.
HUGE_F32 = np.float32(HUGE)
#: PS: (-1)^(j+1) / (2j+3)!, j = 0..7; PC: (-1)^j / (2j+4)!, j = 0..7 (binary64-rounded).
SIN_C = np.array([float(Fraction((-1) ** (j + 1), factorial(2 * j + 3))) for j in range(8)])
COS_C = np.array([float(Fraction((-1) ** j, factorial(2 * j + 4))) for j in range(8)])


@inline_jit
def sin_poly(r: float) -> float:  # pragma: no cover - compiled
    """sin(r) for |r| <= pi/4 (+ a little)."""
    z = r * r
    p = SIN_C[7]
    for j in range(6, -1, -1):
        p = p * z + SIN_C[j]
    return r + (r * z) * p


@inline_jit
def cos_poly(r: float) -> float:  # pragma: no cover - compiled
    """cos(r) for |r| <= pi/4 (+ a little)."""
    z = r * r
    p = COS_C[7]
    for j in range(6, -1, -1):
        p = p * z + COS_C[j]
    return (1.0 - 0.5 * z) + (z * z) * p


@inline_jit
def _reduce_near(x: np.float32) -> tuple[np.int64, float]:  # pragma: no cover - compiled
    """(n, r) with |x| = (4j + n) pi/2 + r, n in 0..3, for ``|x| < 2^24``, without a branch
    (``x`` of 2^24 or more, or not finite, gives some (n, r): its caller replaces that lane).
    ``n`` comes from the low bits of the shifted sum, which are those of ``k`` (``k < 2^24``):
    a bit cast, where converting ``kf`` to an integer has no vector instruction on AVX2."""
    a = np.abs(np.float64(x))
    a = select(a < HUGE, a, 0.0)  # NaN, infinities and huge x: reduce 0 instead
    shifted = a * TWO_OVER_PI + SHIFT64
    kf = shifted - SHIFT64
    r = ((a - kf * P1) - kf * P2) - kf * P3
    return f64_as_i64(shifted) & 3, r


@inline_jit
def _sin_of(n: np.int64, r: float, x: np.float32) -> np.float32:  # pragma: no cover
    """sin x for a finite ``x`` reduced to (n, r): quadrant n picks +-S or +-C (both are
    evaluated, then selected), the sign of x makes it odd, sin(+-0) = +-0."""
    sp, cp = sin_poly(r), cos_poly(r)
    s = select(n == 0, sp, select(n == 1, cp, select(n == 2, -sp, -cp)))
    res = np.float32(select(x > 0, s, -s))
    return select(x == 0, x, res)


@inline_jit
def _cos_of(n: np.int64, r: float) -> np.float32:  # pragma: no cover - compiled
    """cos x for a finite ``x`` reduced to (n, r)."""
    sp, cp = sin_poly(r), cos_poly(r)
    return np.float32(select(n == 0, cp, select(n == 1, -sp, select(n == 2, -cp, sp))))


@inline_jit
def sin_near_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """:func:`sin_f32` without a branch, for ``|x| < 2^24`` and non-finite ``x``."""
    n, r = _reduce_near(x)
    return select(np.isfinite(x), _sin_of(n, r, x), x - x)


@inline_jit
def cos_near_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """:func:`cos_f32` without a branch, for ``|x| < 2^24`` and non-finite ``x``."""
    n, r = _reduce_near(x)
    return select(np.isfinite(x), _cos_of(n, r), x - x)


@inline_jit
def reduce_pio2(x: np.float32) -> tuple[np.int64, float]:  # pragma: no cover - compiled
    """(n, r): |x| = (4j + n) pi/2 + r, n in 0..3, for finite float32 ``x`` (Payne-Hanek from
    2^24 on)."""
    if np.abs(x) >= HUGE_F32:
        return reduce_huge(x)
    return _reduce_near(x)


@inline_jit
def sin_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """sin(x) for float32 ``x``; NaN for +-inf and NaN; sin(+-0) = +-0."""
    if not np.isfinite(x):
        return x - x
    n, r = reduce_pio2(x)
    return _sin_of(n, r, x)


@inline_jit
def cos_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """cos(x) for float32 ``x``; NaN for +-inf and NaN."""
    if not np.isfinite(x):
        return x - x
    n, r = reduce_pio2(x)
    return _cos_of(n, r)
