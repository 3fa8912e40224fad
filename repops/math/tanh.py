"""tanh for binary32 (spec: elementwise.md, "tanh_f32" and "tanh64").

``tanh|x| = -e / (e + 2)`` with ``e = expm1(-2|x|)`` in (-1, 0]: no cancellation anywhere
(``e + 2`` lies in (1, 2]) and ``tanh x ~ x`` near 0 comes out with full relative accuracy
because expm1 does. Above ``|x| = 10`` the binary32 result is exactly +-1.

The binary32 function computes that in binary32 with :func:`repops.math.exp.expm1_f32`
(a few ulps, the price of torch's own tanh). The same formula in binary64 (``tanh64_core``)
stays for the tanh-GELU's derivative, which is specified in binary64.
"""

from __future__ import annotations

import numpy as np

from repops._numba import inline_jit
from repops.math._bits import ieee_div, select
from repops.math.exp import expm1_64_core, expm1_f32

#: For |x| > SATURATE, tanh(x) rounds to +-1 in binary32 (1 - tanh 10 < 2^-27).
SATURATE = 10.0
SATURATE_F32 = np.float32(SATURATE)
ONE_F32 = np.float32(1.0)
TWO_F32 = np.float32(2.0)


@inline_jit
def tanh64_core(x: float) -> float:  # pragma: no cover - compiled
    """tanh(x) in binary64 (about 2^-50 relative), odd, tanh(+-0) = +-0."""
    a = np.abs(x)
    e = expm1_64_core(-2.0 * select(a < SATURATE, a, SATURATE))  # branch-free (see exp_f32)
    t = select(a > SATURATE, 1.0, ieee_div(-e, e + 2.0))
    t = select(x > 0, t, -t)
    t = select(x == 0.0, x, t)
    return select(np.isnan(x), x + x, t)


@inline_jit
def tanh_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """tanh(x) for float32 ``x`` in binary32 (``-2|x|`` is exact, so only expm1 and the
    quotient round)."""
    a = np.abs(x)
    u = expm1_f32(TWO_F32 * select(a < SATURATE_F32, a, SATURATE_F32))
    t = select(a > SATURATE_F32, ONE_F32, ieee_div(u, u + TWO_F32))
    t = select(x > 0, t, -t)
    t = select(x == 0, x, t)
    return select(np.isnan(x), x + x, t)
