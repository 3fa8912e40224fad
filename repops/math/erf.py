"""erf and erfc cores in binary64 and erf for binary32 (spec: elementwise.md, "erf").

For ``a = |x| < 1``: ``erf a = a * sum_{n=0}^{17} c_n a^(2n)`` with the Maclaurin coefficients
``c_n = 2/sqrt(pi) (-1)^n / (n! (2n+1))`` (A&S 7.1.5; truncation below 2^-52 at a = 1).
For ``1 <= a < 10.5``: ``erfc a = exp(-a*a) * G_i(a - t_i)`` where ``G_i`` is the degree-10
polynomial of row i = floor(2(a - 1)) of repops/math/_erfc_table.py approximating
``erfc(a) e^(a^2)`` around ``t_i = 1.25 + i/2`` (relative error below 2^-46, fitted by
tools/fit_poly.py). For ``a >= 10.5``: erfc a = 0 (below 1e-49, invisible in every binary32
result that uses it). erf = 1 - erfc there, erfc(-a) = 2 - erfc(a).
"""

from __future__ import annotations

from fractions import Fraction
from math import factorial

import numpy as np

from repops._numba import jit
from repops.math._erfc_table import ERFC_SCALED_HEX
from repops.math.exp import exp64_core

#: 2/sqrt(pi) correctly rounded to binary64.
TWO_OVER_SQRT_PI = float.fromhex("0x1.20dd750429b6dp+0")
#: Maclaurin coefficients of erf(a)/a in powers of a^2: each (-1)^n / (n! (2n+1)) rounded to
#: binary64, then multiplied by TWO_OVER_SQRT_PI in binary64 (one more rounding).
ERF_SMALL_C = np.array(
    [
        float(Fraction((-1) ** n, factorial(n) * (2 * n + 1))) * TWO_OVER_SQRT_PI
        for n in range(18)
    ]
)
ERFC_SCALED = np.array([[float.fromhex(v) for v in row] for row in ERFC_SCALED_HEX])
ERFC_ZERO_FROM = 10.5


@jit
def erf_small_core(a: float) -> float:  # pragma: no cover - compiled
    """erf(a) for |a| < 1 (odd series, Horner in a^2 from the highest term)."""
    z = a * a
    p = ERF_SMALL_C[17]
    for j in range(16, -1, -1):
        p = p * z + ERF_SMALL_C[j]
    return a * p


@jit
def erfc_large_core(a: float) -> float:  # pragma: no cover - compiled
    """erfc(a) for 1 <= a < 10.5: exp(-a*a) * G_i(a - t_i)."""
    i = np.int64((a - 1.0) * 2.0)
    t = a - (1.25 + 0.5 * np.float64(i))
    p = ERFC_SCALED[i, 10]
    for j in range(9, -1, -1):
        p = p * t + ERFC_SCALED[i, j]
    return exp64_core(-(a * a)) * p


@jit
def erfc64_core(x: float) -> float:  # pragma: no cover - compiled
    """erfc(x) = 1 - erf(x) in binary64 for any x, relative accuracy kept for large x."""
    if np.isnan(x):
        return x + x
    a = np.abs(x)
    if a < 1.0:
        e = erf_small_core(a)
        return 1.0 - e if x >= 0 else 1.0 + e
    c = 0.0 if a >= ERFC_ZERO_FROM else erfc_large_core(a)
    return c if x > 0 else 2.0 - c


@jit
def erf64_core(x: float) -> float:  # pragma: no cover - compiled
    """erf(x) in binary64, odd, erf(+-0) = +-0."""
    if np.isnan(x):
        return x + x
    a = np.abs(x)
    if a < 1.0:
        return erf_small_core(x)
    v = 1.0 if a >= ERFC_ZERO_FROM else 1.0 - erfc_large_core(a)
    return v if x > 0 else -v


@jit
def erf_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """erf(x) for float32 ``x``, rounded once from binary64."""
    return np.float32(erf64_core(np.float64(x)))
