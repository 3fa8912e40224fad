"""sigmoid and silu for binary32, in binary32 (spec: elementwise.md, §4).

With ``e = exp(-|x|)`` in (0, 1] and ``d = 1 + e`` in (1, 2]: ``sigmoid(x) = 1/d`` for
x >= 0 and ``e/d`` for x < 0, ``silu(x) = x/d`` and ``(x*e)/d``. Why not torch's
``1/(1 + exp(-x))``: for x below -88.7, ``exp(-x)`` overflows and that formula returns 0
where the true sigmoid is a (sub)normal number; ``exp(-|x|)`` never overflows, and the
gradual underflow of exp_f32 carries through. silu(-inf) = -inf * 0 = NaN, which is also
what the plain formula gives in PyTorch.
"""

from __future__ import annotations

import numpy as np

from repops._numba import inline_jit
from repops.math._bits import ieee_div, select
from repops.math.exp import exp_f32

ONE = np.float32(1.0)


@inline_jit
def sigmoid_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """Logistic sigmoid of float32 ``x``: ``(x < 0 ? e : 1) / (1 + e)``, ``e = exp(-|x|)``."""
    e = exp_f32(-np.abs(x))
    return ieee_div(select(x < 0, e, ONE), ONE + e)


@inline_jit
def silu_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """x * sigmoid(x) as ``(x < 0 ? x*e : x) / (1 + e)``, ``e = exp(-|x|)``."""
    e = exp_f32(-np.abs(x))
    return ieee_div(select(x < 0, x * e, x), ONE + e)


@inline_jit
def silu_backward_f32(g: np.float32, x: np.float32) -> np.float32:  # pragma: no cover
    """grad * (s * (1 + x * (1 - s))) with s = sigmoid(x), in binary32 (torch's formula)."""
    s = sigmoid_f32(x)
    return g * (s * (ONE + x * (ONE - s)))
