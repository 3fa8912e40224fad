"""Numpy reference for the compound elementwise ops (spec elementwise.md, "compound ops").

Inputs are flat arrays already in the compute dtype (float32 or float64), broadcast; scalars
are numpy scalars of that dtype. ``fma`` is :func:`repops.reference.fma.fma32` for binary32 and
:func:`repops.reference.fma.fma64` element by element for binary64.
"""

from __future__ import annotations

import numpy as np

from repops.kernels.elementwise_compound import SOFTPLUS_LINEAR_FROM
from repops.reference.elementwise import (
    exp64_core_reference,
    expm1_64_core_reference,
    log64_core_reference,
)
from repops.reference.fma import fma32, fma64


def fma_reference(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Correctly rounded a*b + c in the dtype of ``c`` (float32 or float64)."""
    c = np.asarray(c)
    if c.dtype == np.float32:
        return fma32(a, b, c)
    a64, b64, c64 = np.broadcast_arrays(
        np.asarray(a, np.float64), np.asarray(b, np.float64), c.astype(np.float64)
    )
    flat = [fma64(float(x), float(y), float(z)) for x, y, z in
            zip(a64.ravel(), b64.ravel(), c64.ravel(), strict=True)]
    return np.array(flat, dtype=np.float64).reshape(a64.shape)


def axpy_reference(x: np.ndarray, y: np.ndarray, alpha: np.floating) -> np.ndarray:
    return fma_reference(np.full_like(x, alpha), y, x)


def addcmul_reference(
    s: np.ndarray, t1: np.ndarray, t2: np.ndarray, value: np.floating
) -> np.ndarray:
    return fma_reference(value * t1, t2, s)


def addcdiv_reference(
    s: np.ndarray, t1: np.ndarray, t2: np.ndarray, value: np.floating
) -> np.ndarray:
    with np.errstate(all="ignore"):
        q = t1 / t2
    return fma_reference(np.full_like(s, value), q, s)


def lerp_reference(s: np.ndarray, e: np.ndarray, w: np.ndarray) -> np.ndarray:
    w = np.broadcast_to(w, s.shape).astype(s.dtype)
    one = s.dtype.type(1)
    with np.errstate(all="ignore"):
        d = e - s
        small = fma_reference(w, d, s)
        large = fma_reference(-d, one - w, e)
    return np.where(np.abs(w) < 0.5, small, large)


def sigmoid_backward_reference(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return (g * (g.dtype.type(1) - y)) * y


def tanh_backward_reference(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return g * fma_reference(-y, y, np.full_like(y, 1))


def leaky_relu_reference(x: np.ndarray, slope: np.floating) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.where(x > 0, x, x * slope)


def elu_f32_reference(x: np.ndarray, alpha: float, scale: float, input_scale: float) -> np.ndarray:
    xd = x.astype(np.float64)
    with np.errstate(all="ignore"):
        neg = (scale * alpha) * expm1_64_core_reference(xd * input_scale)
        return np.where(xd > 0, scale * xd, neg).astype(np.float32)


def softplus_f32_reference(x: np.ndarray, beta: float, threshold: float) -> np.ndarray:
    xd = x.astype(np.float64)
    with np.errstate(all="ignore"):
        z = beta * xd
        e = exp64_core_reference(z)
        u = 1.0 + e
        safe_u = np.where((u == 1.0) | ~np.isfinite(u), 2.0, u)
        lp = np.where(u == 1.0, e, log64_core_reference(safe_u) * (e / (safe_u - 1.0)))
        out = (lp / beta).astype(np.float32)
        return np.where((z > threshold) | (z > SOFTPLUS_LINEAR_FROM) | np.isnan(z), x, out)
