"""tanh for binary32 (spec: elementwise.md, "tanh_f32" and "tanh64").

Both forms are quotients of expm1, so ``tanh x ~ x`` near 0 comes out with full relative
accuracy because expm1 does, and neither cancels. Above ``|x| = 10`` the binary32 result is
exactly +-1.

- ``tanh_f32`` (binary32): ``tanh|x| = u / (u + 2)`` with ``u = expm1_f32(2|x|)``. Its error
  shrinks like 2/u for large |x|, where the negative form below reaches 2.5 ulp in binary32;
  a few ulps overall, the price of torch's own tanh.
- ``tanh64_core`` (binary64, for the tanh-GELU's derivative, specified in binary64):
  ``-e / (e + 2)`` with ``e = expm1(-2|x|)`` in (-1, 0].
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
    """tanh(x) for float32 ``x`` in binary32 (``2|x|`` is exact, so only expm1, ``u + 2`` and
    the quotient round)."""
    a = np.abs(x)
    u = expm1_f32(TWO_F32 * select(a < SATURATE_F32, a, SATURATE_F32))
    t = select(a > SATURATE_F32, ONE_F32, ieee_div(u, u + TWO_F32))
    t = select(x > 0, t, -t)
    t = select(x == 0, x, t)
    return select(np.isnan(x), x + x, t)
