"""GELU (erf and tanh forms) and their derivatives for binary32, in binary64.

Hendrycks & Gimpel, "Gaussian Error Linear Units (GELUs)", 2016. Definitions (spec
elementwise.md, "gelu"):

- erf form: ``0.5 * x * erfc(-x * INV_SQRT2)`` (= x Phi(x); erfc keeps relative accuracy in the
  left tail where ``1 + erf`` would cancel).
- tanh form: ``x / (1 + exp(-2u))`` with ``u = SQRT_2_OVER_PI * (x + KAPPA * x*x*x)``; the
  identity ``0.5 (1 + tanh u) = 1 / (1 + e^(-2u))`` again avoids cancellation.
- backward (erf): ``g * (0.5 * erfc(-x INV_SQRT2) + x * exp(-0.5 x x) * INV_SQRT_2PI)``.
- backward (tanh): PyTorch's formula with repops' tanh, all in binary64.
"""

from __future__ import annotations

import numpy as np

from repops._numba import jit
from repops.math._bits import ieee_div
from repops.math.erf import erfc64_core
from repops.math.exp import exp64_core
from repops.math.tanh import tanh64_core

INV_SQRT2 = float.fromhex("0x1.6a09e667f3bcdp-1")
INV_SQRT_2PI = float.fromhex("0x1.9884533d43651p-2")
SQRT_2_OVER_PI = float.fromhex("0x1.9884533d43651p-1")
KAPPA = 0.044715


@jit
def gelu_erf_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """x Phi(x) for float32 ``x``."""
    xd = np.float64(x)
    return np.float32((0.5 * xd) * erfc64_core(-(xd * INV_SQRT2)))


@jit
def gelu_tanh_inner(xd: float) -> float:  # pragma: no cover - compiled
    """u = sqrt(2/pi) (x + 0.044715 x^3) in binary64."""
    return SQRT_2_OVER_PI * (xd + KAPPA * ((xd * xd) * xd))


@jit
def gelu_tanh_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """Tanh-approximated GELU for float32 ``x``: x / (1 + exp(-2u))."""
    xd = np.float64(x)
    return np.float32(ieee_div(xd, 1.0 + exp64_core(-2.0 * gelu_tanh_inner(xd))))


@jit
def gelu_erf_backward_f32(g: np.float32, x: np.float32) -> np.float32:  # pragma: no cover
    """g * (Phi(x) + x phi(x))."""
    xd = np.float64(x)
    cdf = 0.5 * erfc64_core(-(xd * INV_SQRT2))
    pdf = exp64_core(-0.5 * (xd * xd)) * INV_SQRT_2PI
    return np.float32(np.float64(g) * (cdf + xd * pdf))


@jit
def gelu_tanh_backward_f32(g: np.float32, x: np.float32) -> np.float32:  # pragma: no cover
    """PyTorch's tanh-GELU derivative, term by term in binary64 with repops' tanh."""
    xd = np.float64(x)
    t = tanh64_core(gelu_tanh_inner(xd))
    left = 0.5 * xd
    right = 1.0 + t
    left_d = 0.5 * right
    right_d = left * ((1.0 - t * t) * (SQRT_2_OVER_PI * (1.0 + 3.0 * KAPPA * (xd * xd))))
    return np.float32(np.float64(g) * (left_d + right_d))
