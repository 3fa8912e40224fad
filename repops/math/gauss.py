"""The standard normal tail in binary32: ``Q(y) = e^(-y^2/2) K(y)`` (spec elementwise.md, §5).

Why this split: Q falls like e^(-y^2/2), far faster than any polynomial follows in binary32,
while ``K(y) = Q(y) e^(y^2/2)`` (Mills' ratio) is smooth and slowly varying on [0.5, 16): a
binary32 polynomial of degree 10 per binade holds it to 2^-25.7 relative (tools/fit_poly.py
gauss-table). The exponent ``y^2/2`` comes as an exact pair (``y*y`` and its fma error) and
goes to :func:`repops.math.exp.exp_neg_pair_f32`, so the steep factor keeps binary32 accuracy
too. erf and both parts of the erf-GELU are built from this one tail (A&S 7.1.2, 26.2.2).

The binade of ``y`` is read from its encoding and ``t`` (the significand minus 1.5) is exact.
Every lane evaluates the polynomials of all five rows, each with its coefficients as constants,
and four selects on the bits of the binade number pick the row's value. That is the same
Horner steps on the same values as evaluating the row alone, so the bits are the same, with no
table load: every lane runs the same instructions and no gather is needed, so loops over
arrays vectorise fully (gathers cost 3x the whole function on Zen 4). Selecting each of the 12
coefficients first (48 selects, one polynomial) was 1.2x slower on Zen 3 (AVX2): the selects
and their constants outweigh the 44 extra fmas.
"""

from __future__ import annotations

from typing import Any

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


def _binade_polynomial(s: int) -> Any:
    """K(y) on binade row ``s`` as a function of ``t``: ``c0_hi + fma(t, HF(c1..c10; t), c0_lo)``
    with the row's coefficients as compile-time constants (Horner written out, no loop)."""
    c = GAUSS_TAIL[s]

    @inline_jit
    def polynomial(t: np.float32) -> np.float32:  # pragma: no cover - compiled
        p = fma(c[11], t, c[10])
        p = fma(p, t, c[9])
        p = fma(p, t, c[8])
        p = fma(p, t, c[7])
        p = fma(p, t, c[6])
        p = fma(p, t, c[5])
        p = fma(p, t, c[4])
        p = fma(p, t, c[3])
        p = fma(p, t, c[2])
        return c[0] + fma(t, p, c[1])

    return polynomial


_K0, _K1, _K2, _K3, _K4 = (_binade_polynomial(s) for s in range(5))


#: Arguments below this are in the table's first three binades (rows 0-2): see
#: :func:`mills_ratio_short_f32`.
SHORT_TAIL_HI = np.float32(4.0)


@inline_jit
def _binade_of(y: np.float32) -> tuple[np.float32, bool, bool, bool]:  # pragma: no cover
    """``t`` and the three bits of the table row of ``y`` (clamped into [0.5, 16))."""
    yc = select(y > TAIL_LO, y, TAIL_LO)
    yc = select(yc < TAIL_HI, yc, TAIL_HI)
    bits = f32_as_i32(yc)
    s = (bits >> 23) - 126  # the binade, 0..4
    t = i32_as_f32(np.int32((bits & 0x007FFFFF) | 0x3F800000)) - ONE_HALF  # exact
    return t, (s & 1) != 0, (s & 2) != 0, (s & 4) != 0


@inline_jit
def mills_ratio_f32(y: np.float32) -> np.float32:  # pragma: no cover - compiled
    """K(y) = Q(y) e^(y^2/2) for y in [0.5, 16) (clamped there; NaN gives K(0.5))."""
    t, b0, b1, b2 = _binade_of(y)
    k01 = select(b0, _K1(t), _K0(t))
    k23 = select(b0, _K3(t), _K2(t))
    return select(b2, _K4(t), select(b1, k23, k01))


@inline_jit
def mills_ratio_short_f32(y: np.float32) -> np.float32:  # pragma: no cover - compiled
    """:func:`mills_ratio_f32` for ``y < SHORT_TAIL_HI`` only: the same row polynomial, so the
    same bits, without evaluating rows 3 and 4. Why: a loop over an array evaluates every
    row in every lane; where a block of arguments is known to stay below 4 (a block of
    activations almost always is), two of the five polynomials are wasted work."""
    t, b0, b1, _ = _binade_of(y)
    return select(b1, _K2(t), select(b0, _K1(t), _K0(t)))


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
