"""pow(x, y) for binary32 per IEEE 754-2008 (9.2.1) / C99 Annex F.9.4.4 special cases, and the
general case ``|x|^y = exp(y * log|x|)`` in binary64 (spec: elementwise.md, "pow").

Why binary64 inside: ``y * log|x|`` must carry about 30 significant bits beyond the result's
to keep the error below one binary32 ulp for every exponent, which binary64 does with plain
operations (the product's relative error, ~2^-50, times |y log x| <= 104 where the result is
a finite nonzero binary32, stays below 2^-43).

Shortcuts for the exponents models use (``x.pow(2)`` in RMSNorm and variances, ``x ** 3`` in
GPT-2's tanh-GELU, ``x ** -1``, ``x ** -2``, ``x ** 0.5``, and ``x ** 1``, which autograd's
pow backward calls for every square), after the special cases: each is
correctly rounded or, computed in binary64 from an exact square, one binary64 rounding away
from it, so the accuracy is the general case's at the price of a multiply or a division.
Each shortcut also gives pow's special cases for its exponent by itself (checked by the
tests), so the aten kernel runs it alone as a loop that vectorises.
"""

from __future__ import annotations

import numpy as np

from repops._numba import inline_jit
from repops.math._bits import f32_as_i32, ieee_div, select
from repops.math.exp import exp64_core
from repops.math.log import log64_core

ONE = np.float32(1.0)
ZERO = np.float32(0.0)
INF = np.float32(np.inf)
NAN = np.float32(np.nan)
TWO = np.float32(2.0)
THREE = np.float32(3.0)
MINUS_ONE = np.float32(-1.0)
MINUS_TWO = np.float32(-2.0)
HALF = np.float32(0.5)
#: Every binary32 of magnitude >= 2^24 is an even integer.
EVEN_FROM = np.float32(16777216.0)


@inline_jit
def identity_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """pow(x, 1) = ``x`` (exact; the general case rounds exp(log|x|) to x anyway)."""
    return x


@inline_jit
def square_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """pow(x, 2) = ``x * x`` (B32, correctly rounded, as PyTorch computes it)."""
    return x * x


@inline_jit
def cube_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """pow(x, 3) = ``f32((xd * xd) * xd)`` (binary64; ``xd * xd`` is exact)."""
    xd = np.float64(x)
    return np.float32((xd * xd) * xd)


@inline_jit
def reciprocal_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """pow(x, -1) = ``1 / x`` (B32, correctly rounded; 1/+-0 = +-inf, 1/+-inf = +-0)."""
    return ieee_div(ONE, x)


@inline_jit
def inv_square_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """pow(x, -2) = ``f32(1 / (xd * xd))`` (binary64; ``xd * xd`` is exact)."""
    xd = np.float64(x)
    return np.float32(ieee_div(1.0, xd * xd))


@inline_jit
def sqrt_pow_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """pow(x, 0.5) = ``sqrt(x) + 0`` (correctly rounded), +inf at -inf.

    pow differs from sqrt at two inputs: pow(-0, 0.5) = +0 (the ``+ 0`` turns sqrt's -0 into
    +0) and pow(-inf, 0.5) = +inf (sqrt gives NaN).
    """
    return select(x == -INF, INF, np.sqrt(x) + ZERO)


@inline_jit
def pow_f32(x: np.float32, y: np.float32) -> np.float32:  # pragma: no cover - compiled
    """x ** y for float32 operands (IEEE special cases, see the module docstring)."""
    if y == 0:
        return ONE
    if x == ONE:
        return ONE
    if np.isnan(x) or np.isnan(y):
        return NAN
    ay = np.abs(y)
    if ay >= EVEN_FROM:
        y_int = True
        y_odd = False
    else:
        t = np.int64(y)
        y_int = np.float32(t) == y
        y_odd = y_int and (t & 1) == 1
    ax = np.abs(x)
    x_neg = f32_as_i32(x) < 0
    if np.isinf(y):
        if ax == ONE:
            return ONE
        return INF if (ax > ONE) == (y > 0) else ZERO
    if ax == 0:
        if y < 0:
            return -INF if (x_neg and y_odd) else INF
        return x if y_odd else ZERO
    if np.isinf(x):
        if not x_neg:
            return INF if y > 0 else ZERO
        if y < 0:
            return -ZERO if y_odd else ZERO
        return -INF if y_odd else INF
    if x_neg and not y_int:
        return NAN
    if y == ONE:
        return identity_f32(x)
    if y == TWO:
        return square_f32(x)
    if y == THREE:
        return cube_f32(x)
    if y == MINUS_ONE:
        return reciprocal_f32(x)
    if y == MINUS_TWO:
        return inv_square_f32(x)
    if y == HALF:
        return sqrt_pow_f32(x)
    r = exp64_core(np.float64(y) * log64_core(np.float64(ax)))
    return np.float32(-r if (x_neg and y_odd) else r)


@inline_jit
def rsqrt_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """1/sqrt(x): binary64 sqrt and division (both correctly rounded), rounded once to binary32.

    The binary64 quotient is within 2^-52 relative of the exact value, so the binary32 result
    is the correctly rounded one except when the exact value lies within that distance of a
    binary32 rounding boundary (error then at most 0.5 ulp + 2^-28 ulp).
    rsqrt(+0) = +inf, rsqrt(-0) = -inf, rsqrt(x < 0) = NaN, rsqrt(+inf) = +0.
    """
    return np.float32(ieee_div(1.0, np.sqrt(np.float64(x))))
