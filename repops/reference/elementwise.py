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

from repops.math import erf as _erf
from repops.math import exp as _exp
from repops.math import gauss as _gauss
from repops.math import gelu as _gelu
from repops.math import log as _log
from repops.math import tanh as _tanh
from repops.reference.fma import fma32

F32 = np.float32


def _as_f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _out(a: np.ndarray, *like: Any) -> Any:
    """float32 result; a ``np.float32`` scalar when every input was a scalar."""
    with np.errstate(all="ignore"):  # binary64 -> binary32 overflow to inf is the rounding
        a = np.asarray(a, dtype=np.float32)
    return F32(a) if all(np.ndim(v) == 0 for v in like) else a


def _pow2_f32(k: np.ndarray) -> np.ndarray:
    """2^k as float32 from its encoding, for integer k in [-126, 127]."""
    return ((k.astype(np.int32) + 127) << 23).astype(np.int32).view(np.float32)


def expm1_poly_f32_reference(r: np.ndarray) -> np.ndarray:
    q = fma32(_exp.Q5, r, _exp.Q4)
    for c in (_exp.Q3, _exp.Q2, _exp.Q1, _exp.Q0):
        q = fma32(q, r, c)
    return fma32(r * r, q, r)


def reduce_ln2_f32_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spec §1 steps 2-3: ``kf`` (x/ln2 rounded to an integer) and ``r = x - kf ln2``."""
    kf = fma32(x, _exp.INV_LN2, _exp.SHIFT) - _exp.SHIFT
    r = fma32(-kf, _exp.LN2_HI, x)
    return kf, fma32(-kf, _exp.LN2_LO, r)


def exp_f32_reference(x: Any) -> Any:
    """Spec "exp_f32" (see repops/math/exp.py for the method)."""
    xa = _as_f32(x)
    with np.errstate(all="ignore"):
        # Clamp the arguments of the main path so masked-out lanes stay harmless.
        xm = np.where(np.isnan(xa) | (xa > _exp.OVER) | (xa < _exp.UNDER), F32(0), xa)
        kf, r = reduce_ln2_f32_reference(xm)
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


def expm1_f32_reference(x: Any) -> Any:
    """Spec "expm1_f32": the reduction of exp_f32, then ``fma(p, 2^k, 2^k - 1)``."""
    xa = _as_f32(x)
    with np.errstate(all="ignore"):
        xm = np.where(np.isnan(xa) | (xa > _exp.OVER) | (xa < _exp.EXPM1_LOW), F32(0), xa)
        kf, r = reduce_ln2_f32_reference(xm)
        p = expm1_poly_f32_reference(r)
        k = kf.astype(np.int32)
        s = _pow2_f32(np.minimum(k, 127))
        out = fma32(p, s, s - F32(1))
        out = np.where(k > 127, out * F32(2), out)
        out = np.where(xa > _exp.OVER, F32(np.inf), out)
        out = np.where(xa < _exp.EXPM1_LOW, F32(-1), out)
        out = np.where(xa == 0, xa, out)
        out = np.where(np.isnan(xa), xa, out)
    return _out(out, x)


def tanh_f32_reference(x: Any) -> Any:
    """Spec "tanh_f32": ``u / (u + 2)``, ``u = expm1_f32(2|x|)``, with the sign of x."""
    xa = _as_f32(x)
    with np.errstate(all="ignore"):
        a = np.abs(xa)
        u = expm1_f32_reference(F32(2) * np.minimum(a, F32(_tanh.SATURATE)))
        t = np.where(a > F32(_tanh.SATURATE), F32(1), u / (u + F32(2)))
        out = np.where(xa > 0, t, -t)
        out = np.where(np.isnan(xa) | (xa == 0), xa, out)
    return _out(out, x)


def _exp_neg_abs(xa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``e = exp_f32(-|x|)`` and ``d = 1 + e`` of the sigmoid family (spec §4)."""
    e = _as_f32(exp_f32_reference(-np.abs(xa)))
    return e, F32(1) + e


def sigmoid_f32_reference(x: Any) -> Any:
    xa = _as_f32(x)
    with np.errstate(all="ignore"):
        e, d = _exp_neg_abs(xa)
        return _out(np.where(xa < 0, e, F32(1)) / d, x)


def silu_f32_reference(x: Any) -> Any:
    xa = _as_f32(x)
    with np.errstate(all="ignore"):
        e, d = _exp_neg_abs(xa)
        return _out(np.where(xa < 0, xa * e, xa) / d, x)


def silu_backward_f32_reference(g: Any, x: Any) -> Any:
    xa = _as_f32(x)
    with np.errstate(all="ignore"):
        s = _as_f32(sigmoid_f32_reference(xa))
        return _out(_as_f32(g) * (s * (F32(1) + xa * (F32(1) - s))), g, x)


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


# --- binary64 cores (plain numpy float64 operations, same order as the spec) ---------------


def _pow2_f64(k: np.ndarray) -> np.ndarray:
    """2^k as float64 from its encoding, for integer k in [-1022, 1023]."""
    return ((k.astype(np.int64) + 1023) << 52).astype(np.int64).view(np.float64)


def _horner(c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """c[n] t^n + ... + c[0], evaluated from the top coefficient down with plain mul/add."""
    p = np.full_like(t, c[-1])
    for cj in c[-2::-1]:
        p = p * t + cj
    return p


def exp64_core_reference(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        xm = np.where(np.isnan(x) | (x > _exp.OVER64) | (x < _exp.UNDER64), 0.0, x)
        kf = (xm * _exp.INV_LN2_64 + _exp.SHIFT64) - _exp.SHIFT64
        r = (xm - kf * _exp.LN2_HI_64) - kf * _exp.LN2_LO_64
        out = _horner(_exp.EXP64_C, r) * _pow2_f64(kf.astype(np.int64))
        out = np.where(x > _exp.OVER64, np.inf, np.where(x < _exp.UNDER64, 0.0, out))
        return np.where(np.isnan(x), x, out)


def expm1_64_core_reference(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        small = x + (x * x) * _horner(_exp.EXPM1_64_C, x)
        big = exp64_core_reference(x) - 1.0
        out = np.where(np.abs(x) < _exp.HALF_LN2_64, small, big)
        return np.where(x == 0, x, out)


def log64_core_reference(x: np.ndarray) -> np.ndarray:
    """For positive normal finite x only (as the spec's callers guarantee)."""
    x = np.asarray(x, dtype=np.float64)
    ix = x.view(np.int64) - _log.SQRT_HALF_BITS64
    e = ix >> 52
    m = ((ix & 0x000FFFFFFFFFFFFF) + _log.SQRT_HALF_BITS64).view(np.float64)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    return e.astype(np.float64) * _log.LN2_64 + (2.0 * s) * _horner(_log.LOG64_C, z)


def tanh64_core_reference(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        a = np.abs(x)
        e = expm1_64_core_reference(-2.0 * a)
        t = np.where(a > _tanh.SATURATE, 1.0, -e / (e + 2.0))
        out = np.where(x > 0, t, -t)
        return np.where(np.isnan(x) | (x == 0), x, out)


# --- binary32 functions computed in binary64 ---------------------------------------------


def _f64(x: Any) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # signalling NaNs quieten on widening
        return _as_f32(x).astype(np.float64)


def log1p_f32_reference(x: Any) -> Any:
    xd = _f64(x)
    with np.errstate(all="ignore"):
        ok = (xd > -1.0) & np.isfinite(xd)
        tiny = xd - (xd * xd) * 0.5
        main = log64_core_reference(np.where(ok, 1.0 + xd, 1.0))
        out = np.where(np.abs(xd) < _log.LOG1P_TINY, tiny, main)
        out = np.where(xd == np.inf, np.inf, out)
        out = np.where(xd == -1.0, -np.inf, out)
        out = np.where(xd < -1.0, np.nan, out)
        out = np.where(np.isnan(xd), xd, out)
    return _out(out, x)


def _gelu_tanh_inner(xd: np.ndarray) -> np.ndarray:
    return _gelu.SQRT_2_OVER_PI * (xd + _gelu.KAPPA * ((xd * xd) * xd))


def gelu_tanh_f32_reference(x: Any) -> Any:
    xd = _f64(x)
    with np.errstate(all="ignore"):
        return _out(xd / (1.0 + exp64_core_reference(-2.0 * _gelu_tanh_inner(xd))), x)


def gelu_tanh_backward_f32_reference(g: Any, x: Any) -> Any:
    xd = _f64(x)
    k = _gelu.SQRT_2_OVER_PI
    with np.errstate(all="ignore"):
        t = tanh64_core_reference(_gelu_tanh_inner(xd))
        left = 0.5 * xd
        right = 1.0 + t
        left_d = 0.5 * right
        right_d = left * ((1.0 - t * t) * (k * (1.0 + 3.0 * _gelu.KAPPA * (xd * xd))))
        return _out(_f64(g) * (left_d + right_d), g, x)


# --- the Gaussian tail family in binary32 (spec §5, §6) -------------------------------------


def _hf(c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """HF: ``c[-1]`` down to ``c[0]`` by fma Horner (coefficients may be per-element rows)."""
    p = np.broadcast_to(c[..., -1], t.shape).astype(np.float32)
    for j in range(c.shape[-1] - 2, -1, -1):
        p = fma32(p, t, c[..., j])
    return p


def exp_neg_pair_f32_reference(h: np.ndarray, lo: np.ndarray) -> np.ndarray:
    e = _as_f32(exp_f32_reference(-_as_f32(h)))
    return fma32(e, -_as_f32(lo), e)


def mills_ratio_f32_reference(y: np.ndarray) -> np.ndarray:
    """K(y) for y in [0.5, 16) (clamped), the row chosen by the binade of y."""
    with np.errstate(invalid="ignore"):
        yc = np.where(_as_f32(y) > _gauss.TAIL_LO, _as_f32(y), _gauss.TAIL_LO)
        yc = np.where(yc < _gauss.TAIL_HI, yc, _gauss.TAIL_HI).astype(np.float32)
    bits = yc.view(np.int32)
    rows = _gauss.GAUSS_TAIL[(bits >> 23) - 126]
    t = ((bits & 0x007FFFFF) | 0x3F800000).astype(np.int32).view(np.float32) - _gauss.ONE_HALF
    p = _hf(rows[..., 2:], t)
    return (rows[..., 0] + fma32(t, p, rows[..., 1])).astype(np.float32)


def _square_pair(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hi = (y * y).astype(np.float32)
    return hi, fma32(y, y, -hi)


def erf_f32_reference(x: Any) -> Any:
    """Spec §5 "erf_f32" (see repops/math/erf.py)."""
    xa = _as_f32(x)
    with np.errstate(all="ignore"):
        a = np.abs(xa)
        w = xa * xa
        c = _erf.ERF_C
        central = fma32(xa, c[0], xa * fma32(w, _hf(c[2:], w), c[1]))
        h, lo = _square_pair(a)
        q = exp_neg_pair_f32_reference(h, lo) * mills_ratio_f32_reference(a * _erf.SQRT2)
        v = F32(1) - (q + q)
        out = np.where(a < _erf.ERF_CENTRAL, central, np.where(xa > 0, v, -v))
        out = np.where(a < _erf.ERF_ONE_FROM, out, np.where(xa > 0, F32(1), F32(-1)))
        out = np.where(np.isnan(xa), xa + xa, out)
    return _out(out, x)


def _gelu_poly_reference(c: np.ndarray, z: np.ndarray) -> np.ndarray:
    return c[0] + fma32(z, _hf(c[2:], z), c[1])


def _gelu_tail_reference(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        yc = np.where(y < _gauss.TAIL_HI, y, _gauss.TAIL_HI).astype(np.float32)
    h, lo = _square_pair(yc)
    e = exp_neg_pair_f32_reference(_gelu.HALF * h, _gelu.HALF * lo)
    return e, mills_ratio_f32_reference(yc)


def gelu_erf_f32_reference(x: Any) -> Any:
    """Spec §6, erf form (see repops/math/gelu.py)."""
    xa = _as_f32(x)
    with np.errstate(all="ignore"):
        y = np.abs(xa)
        z = xa * xa
        central = np.where(z == 0, _gelu.HALF * xa,
                           fma32(z, _gelu_poly_reference(_gelu.PHI_C, z), _gelu.HALF * xa))
        e, k = _gelu_tail_reference(y)
        tail = np.where(xa < 0, (xa * k) * e, fma32(-xa, e * k, xa))
        out = np.where(y < _gelu.GELU_CENTRAL, central, tail)
        out = np.where(xa < _gelu.GELU_IDENTITY_FROM, out, xa)
        out = np.where(np.isnan(xa), xa + xa, out)
    return _out(out, x)


def gelu_erf_backward_f32_reference(g: Any, x: Any) -> Any:
    """Spec §6, erf-form derivative: g * (Phi(x) + x phi(x))."""
    xa, ga = _as_f32(x), _as_f32(g)
    c = _gelu.INV_SQRT_2PI_F32
    with np.errstate(all="ignore"):
        y = np.abs(xa)
        central = fma32(xa, _gelu_poly_reference(_gelu.GELU_D_C, xa * xa), _gelu.HALF)
        e, k = _gelu_tail_reference(y)
        left = e * fma32(xa, c, k)
        right = fma32(e, fma32(xa, c, -k), F32(1))
        d = np.where(y < _gelu.GELU_CENTRAL, central, np.where(xa < 0, left, right))
        return _out(ga * d, g, x)
