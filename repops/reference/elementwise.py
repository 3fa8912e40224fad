"""Numpy reference for repops' elementwise functions, written from repops/spec/elementwise.md.

Every function takes a float32 scalar or array and returns float32 of the same shape (a
``np.float32`` for scalar input). They follow the spec step by step with numpy binary32
operations (correctly rounded IEEE) and :func:`repops.reference.fma.fma32` wherever the spec
writes ``fma``; branches of the spec become masks. Slow but vectorised, so tests can compare
millions of inputs bit for bit against the numba kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repops.math import exp as _exp
from repops.math import log as _log
from repops.reference.fma import fma32

F32 = np.float32


def _as_f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _out(a: np.ndarray, like: Any) -> Any:
    a = np.asarray(a, dtype=np.float32)
    return F32(a) if np.ndim(like) == 0 else a


def _pow2_f32(k: np.ndarray) -> np.ndarray:
    """2^k as float32 from its encoding, for integer k in [-126, 127]."""
    return ((k.astype(np.int32) + 127) << 23).astype(np.int32).view(np.float32)


def expm1_poly_f32_reference(r: np.ndarray) -> np.ndarray:
    q = fma32(_exp.Q5, r, _exp.Q4)
    for c in (_exp.Q3, _exp.Q2, _exp.Q1, _exp.Q0):
        q = fma32(q, r, c)
    return fma32(r * r, q, r)


def exp_f32_reference(x: Any) -> Any:
    """Spec "exp_f32" (see repops/math/exp.py for the method)."""
    xa = _as_f32(x)
    with np.errstate(all="ignore"):
        # Clamp the arguments of the main path so masked-out lanes stay harmless.
        xm = np.where(np.isnan(xa) | (xa > _exp.OVER) | (xa < _exp.UNDER), F32(0), xa)
        kf = fma32(xm, _exp.INV_LN2, _exp.SHIFT) - _exp.SHIFT
        r = fma32(-kf, _exp.LN2_HI, xm)
        r = fma32(-kf, _exp.LN2_LO, r)
        y = F32(1) + expm1_poly_f32_reference(r)
        k = kf.astype(np.int32)
        big = (y * _exp.TWO_127) * F32(2)
        small = (y * _pow2_f32(np.clip(k + 100, -126, 127))) * _exp.TWO_M100
        mid = y * _pow2_f32(np.clip(k, -126, 127))
        out = np.where(k > 127, big, np.where(k < -126, small, mid))
        out = np.where(xa < _exp.UNDER, F32(0), out)
        out = np.where(xa > _exp.OVER, F32(np.inf), out)
        out = np.where(np.isnan(xa), xa, out)
    return _out(out, x)


def log1p_poly_f32_reference(f: np.ndarray) -> np.ndarray:
    q = fma32(_log.Q9, f, _log.Q8)
    for c in (_log.Q7, _log.Q6, _log.Q5, _log.Q4, _log.Q3, _log.Q2, _log.Q1, _log.Q0):
        q = fma32(q, f, c)
    return q


def log_f32_reference(x: Any) -> Any:
    """Spec "log_f32" (see repops/math/log.py for the method)."""
    xa = _as_f32(x)
    with np.errstate(all="ignore"):
        sub = np.abs(xa) < _log.MIN_NORMAL
        xs = np.where(sub, xa * _log.TWO_23, xa)
        ok = (xa > 0) & np.isfinite(xa)
        xs = np.where(ok, xs, F32(1))
        ix = xs.view(np.int32).astype(np.int64) - _log.SQRT_HALF_BITS
        e = (ix >> 23) + np.where(sub, -23, 0)
        m = ((ix & 0x007FFFFF) + _log.SQRT_HALF_BITS).astype(np.int32).view(np.float32)
        f = m - F32(1)
        ef = e.astype(np.float32)
        lo = fma32(f * f, log1p_poly_f32_reference(f), ef * _log.LN2_LO)
        near = (e >= -1) & (e <= 1)
        out = np.where(near, fma32(ef, _log.LN2_HI, f) + lo, fma32(ef, _log.LN2_HI, f + lo))
        out = np.where(xa == np.inf, F32(np.inf), out)
        out = np.where(xa == 0, F32(-np.inf), out)
        out = np.where(xa < 0, F32(np.nan), out)
        out = np.where(np.isnan(xa), xa, out)
    return _out(out, x)
