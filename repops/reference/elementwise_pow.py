"""Numpy reference for repops' pow and rsqrt (spec elementwise.md, "pow", "rsqrt")."""

from __future__ import annotations

from typing import Any

import numpy as np

from repops.math import pow as _pow
from repops.reference.elementwise import (
    F32,
    _as_f32,
    _f64,
    _out,
    exp64_core_reference,
    log64_core_reference,
)

# --- -----------------------------------------------------------------------------


def _pow_scalar(x: np.float32, y: np.float32) -> np.float32:
    """Spec "pow" for one pair, case by case in the spec's order."""
    with np.errstate(all="ignore"):  # overflow to inf is the IEEE rounding here
        return _pow_cases(x, y)


def _pow_cases(x: np.float32, y: np.float32) -> np.float32:
    one, inf = F32(1), F32(np.inf)
    if y == 0 or x == 1:
        return one
    if np.isnan(x) or np.isnan(y):
        return F32(np.nan)
    if abs(y) >= _pow.EVEN_FROM:
        y_int, y_odd = True, False
    else:
        t = int(y)  # truncation, as the kernel's float-to-int conversion
        y_int = float(t) == float(y)
        y_odd = y_int and t % 2 == 1
    ax = abs(x)
    x_neg = bool(np.signbit(x))
    if np.isinf(y):
        if ax == 1:
            return one
        return inf if (ax > 1) == (y > 0) else F32(0)
    if ax == 0:
        if y < 0:
            return -inf if (x_neg and y_odd) else inf
        return x if y_odd else F32(0)
    if np.isinf(x):
        if not x_neg:
            return inf if y > 0 else F32(0)
        if y < 0:
            return F32(-0.0) if y_odd else F32(0)
        return -inf if y_odd else inf
    if x_neg and not y_int:
        return F32(np.nan)
    if y == 1:
        return x
    if y == 2:
        return F32(x * x)
    if y == 3:
        xd = np.float64(x)
        return F32((xd * xd) * xd)
    if y == -1:
        return F32(1) / x
    if y == -2:
        xd = np.float64(x)
        return F32(1.0 / (xd * xd))
    if y == 0.5:
        return np.sqrt(x)
    r = exp64_core_reference(np.float64(y) * log64_core_reference(np.float64(ax)))[()]
    return F32(-r if (x_neg and y_odd) else r)


def pow_f32_reference(x: Any, y: Any) -> Any:
    xa, ya = np.broadcast_arrays(_as_f32(x), _as_f32(y))
    out = np.array([_pow_scalar(a, b) for a, b in zip(xa.ravel(), ya.ravel(), strict=True)])
    return _out(out.astype(np.float32).reshape(xa.shape), xa)


def rsqrt_f32_reference(x: Any) -> Any:
    with np.errstate(all="ignore"):
        return _out(1.0 / np.sqrt(_f64(x)), x)
