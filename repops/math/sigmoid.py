"""sigmoid and silu for binary32, computed in binary64 (spec: elementwise.md).

``sigmoid(x) = 1 / (1 + exp(-x))`` and ``silu(x) = x / (1 + exp(-x))`` with repops' binary64
exp core, rounded once to binary32. For x -> -inf, exp(-x) becomes +inf and the quotients
give 0 (sigmoid) and -0 (silu of large negative finite x); silu(-inf) = -inf/inf = NaN, which
is also what the plain formula gives in PyTorch.
"""

from __future__ import annotations

import numpy as np

from repops._numba import inline_jit
from repops.math._bits import ieee_div
from repops.math.exp import exp64_core


@inline_jit
def sigmoid64_core(x: float) -> float:  # pragma: no cover - compiled
    """1 / (1 + e^-x) in binary64."""
    return ieee_div(1.0, 1.0 + exp64_core(-x))


@inline_jit
def sigmoid_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """Logistic sigmoid of float32 ``x``."""
    return np.float32(sigmoid64_core(np.float64(x)))


@inline_jit
def silu_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """x * sigmoid(x), computed as x / (1 + e^-x) in binary64."""
    xd = np.float64(x)
    return np.float32(ieee_div(xd, 1.0 + exp64_core(-xd)))


@inline_jit
def silu_backward_f32(g: np.float32, x: np.float32) -> np.float32:  # pragma: no cover
    """grad * s * (1 + x * (1 - s)) with s = sigmoid(x), in binary64 (torch's formula)."""
    xd = np.float64(x)
    s = sigmoid64_core(xd)
    return np.float32(np.float64(g) * (s * (1.0 + xd * (1.0 - s))))
