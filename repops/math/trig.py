"""sin and cos for binary32, computed in binary64 (spec: elementwise.md, "sin/cos").

Reduction of ``a = |x|``: for ``a < 2^24`` a three-part Cody-Waite reduction
(Cody & Waite 1980): ``k = round(a * 2/pi)`` by the 1.5*2^52 shifter,
``r = ((a - k*P1) - k*P2) - k*P3`` with P1, P2 of 29 significant bits (so ``k*P1``,
``k*P2`` and ``a - k*P1`` are exact for k < 2^24) and P3 the binary64 rest; for
``a >= 2^24`` the exact Payne-Hanek reduction of repops/math/_payne_hanek.py.
Evaluation on ``|r| <= pi/4`` by Taylor polynomials (terms to r^17 and r^18; truncation
below 2^-60): ``S(r) = r + (r z) PS(z)``, ``C(r) = (1 - z/2) + (z z) PC(z)``, ``z = r*r``.
Quadrant ``n = k mod 4`` picks +-S or +-C; sin is made odd by sign symmetry.
"""

from __future__ import annotations

from fractions import Fraction
from math import factorial

import numpy as np

from repops._numba import inline_jit
from repops.math._payne_hanek import reduce_huge

TWO_OVER_PI = float.fromhex("0x1.45f306dc9c883p-1")
SHIFT64 = float.fromhex("0x1.8p52")
P1 = float.fromhex("0x1.921fb54000000p+0")
P2 = float.fromhex("0x1.10b4611000000p-30")
P3 = float.fromhex("0x1.4c4c6628b80dcp-59")
HUGE = float.fromhex("0x1p24")
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
def reduce_pio2(x: np.float32) -> tuple[int, float]:  # pragma: no cover - compiled
    """(n, r): |x| = (4j + n) pi/2 + r, n in 0..3, for finite float32 ``x``."""
    a = np.abs(np.float64(x))
    if a >= HUGE:
        return reduce_huge(x)
    kf = (a * TWO_OVER_PI + SHIFT64) - SHIFT64
    r = ((a - kf * P1) - kf * P2) - kf * P3
    return np.int64(kf) & 3, r


@inline_jit
def sin_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """sin(x) for float32 ``x``; NaN for +-inf and NaN; sin(+-0) = +-0."""
    if not np.isfinite(x):
        return x - x
    if x == 0:
        return x
    n, r = reduce_pio2(x)
    if n == 0:
        s = sin_poly(r)
    elif n == 1:
        s = cos_poly(r)
    elif n == 2:
        s = -sin_poly(r)
    else:
        s = -cos_poly(r)
    return np.float32(s if x > 0 else -s)


@inline_jit
def cos_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """cos(x) for float32 ``x``; NaN for +-inf and NaN."""
    if not np.isfinite(x):
        return x - x
    n, r = reduce_pio2(x)
    if n == 0:
        c = cos_poly(r)
    elif n == 1:
        c = -sin_poly(r)
    elif n == 2:
        c = -cos_poly(r)
    else:
        c = sin_poly(r)
    return np.float32(c)
