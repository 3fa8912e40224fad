"""The standard normal tail in binary32: ``Q(y) = e^(-y^2/2) K(y)`` (spec elementwise.md, §5).

Why this split: Q falls like e^(-y^2/2), far faster than any polynomial follows in binary32,
while ``K(y) = Q(y) e^(y^2/2)`` (Mills' ratio) is smooth and slowly varying on [0.5, 16): a
binary32 polynomial of degree 10 per binade holds it to 2^-25.7 relative (tools/fit_poly.py
gauss-table). The exponent ``y^2/2`` comes as an exact pair (``y*y`` and its fma error) and
goes to :func:`repops.math.exp.exp_neg_pair_f32`, so the steep factor keeps binary32 accuracy
too. erf and both parts of the erf-GELU are built from this one tail (A&S 7.1.2, 26.2.2).

The binade of ``y`` is read from its encoding, ``t`` (the significand minus 1.5) is exact,
and each coefficient is chosen among the five rows by three selects on the bits of the binade
number rather than by a table load: every lane runs the same instructions and no gather is
needed, so loops over arrays vectorise fully (gathers cost 3x the whole function on Zen 4).
"""

from __future__ import annotations

import numpy as np

from repops._numba import fma, inline_jit
from repops.math._bits import f32_as_i32, i32_as_f32, select
from repops.math._gauss_table import GAUSS_TAIL_HEX
from repops.math.exp import exp_neg_pair_f32

#: K(y) coefficients: row s = e + 1 for y in 2^e [1, 2), columns c0_hi, c0_lo, c1..c10.
GAUSS_TAIL = np.array([[float.fromhex(v) for v in row] for row in GAUSS_TAIL_HEX],
                      dtype=np.float32)
#: The table covers [TAIL_LO, TAIL_HI); arguments are clamped into it (callers select other
#: formulas outside).
TAIL_LO = np.float32(0.5)
TAIL_HI = np.float32(float.fromhex("0x1.fffffep+3"))  # the largest binary32 below 16
ONE_HALF = np.float32(1.5)


@inline_jit
def _coef(j: int, b0: bool, b1: bool, b2: bool) -> np.float32:  # pragma: no cover - compiled
    """Coefficient ``j`` of row ``s = b0 + 2 b1 + 4 b2`` (``j`` a constant at each call)."""
    c01 = select(b0, GAUSS_TAIL[1, j], GAUSS_TAIL[0, j])
    c23 = select(b0, GAUSS_TAIL[3, j], GAUSS_TAIL[2, j])
    return select(b2, GAUSS_TAIL[4, j], select(b1, c23, c01))


@inline_jit
def mills_ratio_f32(y: np.float32) -> np.float32:  # pragma: no cover - compiled
    """K(y) = Q(y) e^(y^2/2) for y in [0.5, 16) (clamped there; NaN gives K(0.5))."""
    yc = select(y > TAIL_LO, y, TAIL_LO)
    yc = select(yc < TAIL_HI, yc, TAIL_HI)
    bits = f32_as_i32(yc)
    s = (bits >> 23) - 126  # the binade, 0..4
    b0, b1, b2 = (s & 1) != 0, (s & 2) != 0, (s & 4) != 0
    t = i32_as_f32(np.int32((bits & 0x007FFFFF) | 0x3F800000)) - ONE_HALF  # exact
    # Horner written out (no inner loop, constant coefficient indices).
    p = fma(_coef(11, b0, b1, b2), t, _coef(10, b0, b1, b2))
    p = fma(p, t, _coef(9, b0, b1, b2))
    p = fma(p, t, _coef(8, b0, b1, b2))
    p = fma(p, t, _coef(7, b0, b1, b2))
    p = fma(p, t, _coef(6, b0, b1, b2))
    p = fma(p, t, _coef(5, b0, b1, b2))
    p = fma(p, t, _coef(4, b0, b1, b2))
    p = fma(p, t, _coef(3, b0, b1, b2))
    p = fma(p, t, _coef(2, b0, b1, b2))
    return _coef(0, b0, b1, b2) + fma(t, p, _coef(1, b0, b1, b2))


@inline_jit
def gauss_tail_f32(y: np.float32, h: np.float32, lo: np.float32) -> np.float32:  # pragma: no cover
    """``e^-(h + lo) K(y)`` where ``h + lo`` is ``y^2/2`` as an exact pair: Q(y) for y >= 0.5.

    Callers that need a different exponent for the same K (erfc(a) = 2 Q(a sqrt 2) uses
    ``a^2``) pass it; ``y`` only selects and evaluates K, which is insensitive to its rounding.
    """
    return exp_neg_pair_f32(h, lo) * mills_ratio_f32(y)


@inline_jit
def square_pair(y: np.float32) -> tuple[np.float32, np.float32]:  # pragma: no cover - compiled
    """``y*y`` and its exact rounding error (``y*y = hi + lo`` exactly, by one fma)."""
    hi = y * y
    return hi, fma(y, y, -hi)
