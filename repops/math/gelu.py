"""GELU (erf and tanh forms) and their derivatives for binary32 (spec elementwise.md, §6).

Hendrycks & Gimpel, "Gaussian Error Linear Units (GELUs)", 2016.

erf form, in binary32 arithmetic: ``gelu x = x Phi(x)`` with Phi the standard normal CDF.
For ``|x| < 1/2``: ``gelu x = fma(x*x, P(x*x), x/2)`` (= x (1/2 + x P)) with a fitted binary32
polynomial P (tools/fit_poly.py phi-central). Otherwise, with the tail ``Q(|x|) = Phi(-|x|) =
e^(-x^2/2) K(|x|)`` of :mod:`repops.math.gauss`: ``gelu x = (x K) e`` for x < 0 (full relative
accuracy in the left tail, where ``1 + erf`` would cancel) and ``fma(-x, e K, x)`` for x > 0
(one rounding). The derivative ``D = Phi(x) + x phi(x)`` is ``fma(x, R(x^2), 1/2)`` for |x| < 1/2
(tools/fit_poly.py gelu-d-central), ``e (K + x/sqrt(2 pi))`` for x < 0 and
``1 + e (x/sqrt(2 pi) - K)`` for x > 0, with ``e = e^(-x^2/2)``. Branch-free (selects).

tanh form: ``x / (1 + exp(-2u))`` with ``u = SQRT_2_OVER_PI * (x + KAPPA * x*x*x)`` and
PyTorch's derivative formula, in binary64 (their binary32 versions are future work).
"""

from __future__ import annotations

import numpy as np

from repops._numba import fma, inline_jit
from repops.math._bits import ieee_div, select
from repops.math.exp import exp64_core, exp_neg_pair_f32
from repops.math.gauss import TAIL_HI, mills_ratio_f32, mills_ratio_short_f32, square_pair
from repops.math.tanh import tanh64_core

_F = float.fromhex
#: (Phi(x) - 1/2)/x ~ c0_hi + (c0_lo + z * HF(c1..c4; z)) in z = x^2 on [0, 1/4].
PHI_C = np.array([_F(v) for v in (
    "0x1.988454p-2", "-0x1.861030p-27", "-0x1.105836p-4", "0x1.46cf56p-7", "-0x1.36ece0p-10",
    "0x1.cc1d56p-14",
)], dtype=np.float32)
#: (Phi(x) + x phi(x) - 1/2)/x, same form.
GELU_D_C = np.array([_F(v) for v in (
    "0x1.988454p-1", "-0x1.88fbd2p-26", "-0x1.105834p-2", "0x1.ea35a2p-5", "-0x1.36c3fcp-7",
    "0x1.1ca6b6p-10",
)], dtype=np.float32)
#: 1/sqrt(2 pi) rounded to binary32.
INV_SQRT_2PI_F32 = np.float32(_F("0x1.988454p-2"))
GELU_CENTRAL = np.float32(0.5)
#: From here on gelu(x) = x exactly (x Q(x) < ulp(x)/2); also keeps gelu(+inf) = +inf.
GELU_IDENTITY_FROM = np.float32(10.0)
HALF = np.float32(0.5)
ONE = np.float32(1.0)

INV_SQRT2 = _F("0x1.6a09e667f3bcdp-1")
INV_SQRT_2PI = _F("0x1.9884533d43651p-2")
SQRT_2_OVER_PI = _F("0x1.9884533d43651p-1")
KAPPA = 0.044715


@inline_jit
def _poly(c: np.ndarray, z: np.float32) -> np.float32:  # pragma: no cover - compiled
    """``c0_hi + (c0_lo + z HF(c1..c4; z))``: the odd part of Phi or D divided by x."""
    p = fma(fma(fma(c[5], z, c[4]), z, c[3]), z, c[2])  # written out: no inner loop
    return c[0] + fma(z, p, c[1])


@inline_jit
def _tail(y: np.float32, short: bool) -> tuple[np.float32, np.float32]:  # pragma: no cover
    """(e^(-y^2/2), K(y)) for y = |x| >= 1/2, the exponent split exactly. y is clamped below
    16 (where e^(-y^2/2) is already 0), so huge |x| never square to infinity. ``short`` (a
    constant of the caller's loop): every ``y`` is below SHORT_TAIL_HI or NaN, so K needs only
    the table's first rows (same bits)."""
    yc = select(y < TAIL_HI, y, TAIL_HI)
    h, lo = square_pair(yc)
    k = mills_ratio_short_f32(yc) if short else mills_ratio_f32(yc)
    return exp_neg_pair_f32(HALF * h, HALF * lo), k


@inline_jit
def gelu_erf_f32(x: np.float32, short: bool) -> np.float32:  # pragma: no cover
    """x Phi(x) for float32 ``x``; ``short``: |x| < SHORT_TAIL_HI is known (a constant)."""
    y = np.abs(x)
    z = x * x
    # x Phi = x/2 + x^2 P(x^2), one rounding; x*x == 0 keeps the sign of a zero x.
    central = select(z == 0, HALF * x, fma(z, _poly(PHI_C, z), HALF * x))
    e, k = _tail(y, short)
    # x < 0: (x K) e, so a subnormal e K never rounds before the last product.
    tail = select(x < 0, (x * k) * e, fma(-x, e * k, x))
    r = select(y < GELU_CENTRAL, central, tail)
    r = select(x < GELU_IDENTITY_FROM, r, x)
    return select(np.isnan(x), x + x, r)


@inline_jit
def gelu_erf_backward_f32(  # pragma: no cover - compiled
    g: np.float32, x: np.float32, short: bool
) -> np.float32:
    """g * (Phi(x) + x phi(x)); ``short`` as in :func:`gelu_erf_f32`."""
    y = np.abs(x)
    central = fma(x, _poly(GELU_D_C, x * x), HALF)
    e, k = _tail(y, short)
    left = e * fma(x, INV_SQRT_2PI_F32, k)
    right = fma(e, fma(x, INV_SQRT_2PI_F32, -k), ONE)
    d = select(y < GELU_CENTRAL, central, select(x < 0, left, right))
    return g * d


@inline_jit
def gelu_tanh_inner(xd: float) -> float:  # pragma: no cover - compiled
    """u = sqrt(2/pi) (x + 0.044715 x^3) in binary64."""
    return SQRT_2_OVER_PI * (xd + KAPPA * ((xd * xd) * xd))


@inline_jit
def gelu_tanh_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """Tanh-approximated GELU for float32 ``x``: x / (1 + exp(-2u))."""
    xd = np.float64(x)
    return np.float32(ieee_div(xd, 1.0 + exp64_core(-2.0 * gelu_tanh_inner(xd))))


@inline_jit
def gelu_tanh_backward_f32(g: np.float32, x: np.float32) -> np.float32:  # pragma: no cover
    """PyTorch's tanh-GELU derivative, term by term in binary64 with repops' tanh."""
    xd = np.float64(x)
    t = tanh64_core(gelu_tanh_inner(xd))
    left = 0.5 * xd
    right = 1.0 + t
    left_d = 0.5 * right
    right_d = left * ((1.0 - t * t) * (SQRT_2_OVER_PI * (1.0 + 3.0 * KAPPA * (xd * xd))))
    return np.float32(np.float64(g) * (left_d + right_d))
