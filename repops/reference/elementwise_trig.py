"""Numpy reference for repops' sin and cos (spec elementwise.md, "sin/cos"), including the exact
Payne-Hanek reduction with Python integers."""

from __future__ import annotations

from typing import Any

import numpy as np

from repops.math import _payne_hanek as _ph
from repops.math import trig as _trig
from repops.reference.elementwise import F32, _as_f32, _horner, _out

# --- ------------------------------------------------------------------------------

_TWO_OVER_PI_BITS = 0
for _limb in _ph.TWO_OVER_PI_LIMBS:
    _TWO_OVER_PI_BITS = (_TWO_OVER_PI_BITS << 32) | int(_limb)


def reduce_huge_reference(x: np.float32) -> tuple[int, float]:
    """Spec "huge arguments", with Python integers: V = M * W mod 2^128."""
    bits = int(np.float32(x).view(np.uint32)) & 0x7FFFFFFF
    m = (bits & 0x7FFFFF) | 0x800000
    e = (bits >> 23) - 150
    w = (_TWO_OVER_PI_BITS >> (256 - (e - 1) - 128)) & ((1 << 128) - 1)
    v = (m * w) % (1 << 128)
    xhi, xlo = v >> 64, v & ((1 << 64) - 1)
    q = ((xhi + (1 << 61)) % (1 << 64)) >> 62
    frac = (xhi - (q << 62)) % (1 << 64)
    if frac >= 1 << 63:
        frac -= 1 << 64
    f = np.float64(frac) * _ph.TWO_M62 + np.float64(xlo) * _ph.TWO_M126
    return q, f * _ph.PIO2


def reduce_pio2_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quadrant n (int64) and remainder r (float64) for finite float32 x (array)."""
    xa = _as_f32(x)
    a = np.abs(xa.astype(np.float64))
    kf = (a * _trig.TWO_OVER_PI + _trig.SHIFT64) - _trig.SHIFT64
    r = ((a - kf * _trig.P1) - kf * _trig.P2) - kf * _trig.P3
    huge = a >= _trig.HUGE
    # Huge inputs get their quadrant from the exact reduction below; their kf may not even fit
    # in an int64, so it is not cast.
    n = np.where(huge, 0.0, kf).astype(np.int64) & 3
    for idx in zip(*np.nonzero(huge), strict=True):
        n[idx], r[idx] = reduce_huge_reference(xa[idx])
    return n, r


def sin_poly_reference(r: np.ndarray) -> np.ndarray:
    z = r * r
    return r + (r * z) * _horner(_trig.SIN_C, z)


def cos_poly_reference(r: np.ndarray) -> np.ndarray:
    z = r * r
    return (1.0 - 0.5 * z) + (z * z) * _horner(_trig.COS_C, z)


def _trig_reference(x: Any, is_sin: bool) -> Any:
    with np.errstate(all="ignore"):
        return _trig_cases(x, is_sin)


def _trig_cases(x: Any, is_sin: bool) -> Any:
    xa = np.atleast_1d(_as_f32(x))
    fin = np.isfinite(xa)
    n, r = reduce_pio2_reference(np.where(fin, xa, F32(0)))
    s, c = sin_poly_reference(r), cos_poly_reference(r)
    if is_sin:
        v = np.select([n == 0, n == 1, n == 2], [s, c, -s], -c)
        v = np.where(xa > 0, v, -v)
        v = np.where(xa == 0, xa.astype(np.float64), v)
    else:
        v = np.select([n == 0, n == 1, n == 2], [c, -s, -c], s)
    v = np.where(fin, v, np.nan)
    return _out(v.reshape(np.shape(x)), x)


def sin_f32_reference(x: Any) -> Any:
    return _trig_reference(x, True)


def cos_f32_reference(x: Any) -> Any:
    return _trig_reference(x, False)
