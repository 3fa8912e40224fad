"""erf for binary32 in binary32 arithmetic (spec: elementwise.md, §5).

For ``|x| < 0.75``: ``erf x = fma(x, c0_hi, x (c0_lo + w HF(c1..c5; w)))``, ``w = x*x``, a
binary32 polynomial fitted by tools/fit_poly.py (erf-central; relative error 2^-27.7 before
rounding, the constant term split in two so its own rounding does not dominate). For
``0.75 <= |x| < 4``: ``erf |x| = 1 - erfc|x|`` with ``erfc a = 2 Q(a sqrt2) =
2 e^(-a^2) K(a sqrt2)`` from :mod:`repops.math.gauss` (A&S 7.1.2, 26.2.29), ``a^2`` split
exactly by an fma. From
``|x| = 4`` on, erfc is below 2^-25 and erf rounds to +-1. Branch-free (selects), so array
loops vectorise; the measured error is in the spec.
"""

from __future__ import annotations

import numpy as np

from repops._numba import fma, inline_jit
from repops.math._bits import select
from repops.math.gauss import gauss_tail_f32, square_pair

_F = float.fromhex
#: erf(a)/a ~ c0_hi + (c0_lo + w * HF(c1..c5; w)) in w = a^2 on [0, 0.5625].
ERF_C = np.array([_F(v) for v in (
    "0x1.20dd74p+0", "0x1.fb84bep-25", "-0x1.81273ap-2", "0x1.ce2aeap-4", "-0x1.b7ab4ep-6",
    "0x1.4f427cp-8", "-0x1.625aeap-11",
)], dtype=np.float32)
ERF_CENTRAL = np.float32(0.75)
ERF_ONE_FROM = np.float32(4.0)
#: sqrt(2) rounded to binary32 (only selects and evaluates K, which is insensitive to it).
SQRT2 = np.float32(_F("0x1.6a09e6p+0"))
ONE = np.float32(1.0)


@inline_jit
def erf_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """erf(x) for float32 ``x``; odd, erf(+-0) = +-0."""
    a = np.abs(x)
    w = x * x
    p = fma(fma(fma(fma(ERF_C[6], w, ERF_C[5]), w, ERF_C[4]), w, ERF_C[3]), w, ERF_C[2])
    central = fma(x, ERF_C[0], x * fma(w, p, ERF_C[1]))  # the large term rounds once
    h, lo = square_pair(a)
    q = gauss_tail_f32(a * SQRT2, h, lo)  # erfc(a) / 2
    v = ONE - (q + q)
    tail = select(x > 0, v, -v)
    r = select(a < ERF_CENTRAL, central, tail)
    r = select(a < ERF_ONE_FROM, r, select(x > 0, ONE, -ONE))
    return select(np.isnan(x), x + x, r)
