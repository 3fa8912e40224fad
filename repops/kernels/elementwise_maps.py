"""Array kernels applying one binary32 math function to every element (flat, contiguous).

Why one small function per math function: each is compiled (and cached) on its own, with the
scalar function inlined into a loop LLVM can vectorise. ``prange`` runs over chunks of
``CHUNK`` elements; every element is computed by exactly one call of the scalar function, so
the partition (thread count, chunk size) cannot change a bit. The element index runs over
unsigned integers: numba then emits no negative-index wraparound, which would keep LLVM from
vectorising the loop (4-5x slower).
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from repops._numba import inline_jit
from repops.kernels._rows import row_kernel
from repops.math.erf import erf_f32
from repops.math.exp import exp_f32, expm1_f32
from repops.math.gauss import SHORT_TAIL_HI
from repops.math.gelu import (
    gelu_erf_backward_f32,
    gelu_erf_f32,
    gelu_tanh_backward_f32,
    gelu_tanh_f32,
)
from repops.math.log import log1p_f32, log_f32
from repops.math.pow import (
    cube_f32,
    identity_f32,
    inv_square_f32,
    pow_f32,
    reciprocal_f32,
    rsqrt_f32,
    sqrt_pow_f32,
    square_f32,
)
from repops.math.sigmoid import sigmoid_f32, silu_backward_f32, silu_f32
from repops.math.tanh import tanh_f32
from repops.math.trig import HUGE_F32, cos_f32, cos_near_f32, sin_f32, sin_near_f32

#: Elements per parallel work item (a multiple of every SIMD width); the compound maps use it
#: too.
CHUNK = 4096
#: Elements whose magnitudes the erf-GELU maps check together (a multiple of every SIMD
#: width): a block of 256 standard-normal activations has one past 4 with probability 1.6%.
SCAN = 256


@row_kernel
def map_exp(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = exp_f32(x[i])


@row_kernel
def map_expm1(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = expm1_f32(x[i])


@row_kernel
def map_log(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = log_f32(x[i])


@row_kernel
def map_log1p(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = log1p_f32(x[i])


@row_kernel
def map_tanh(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = tanh_f32(x[i])


@row_kernel
def map_sigmoid(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = sigmoid_f32(x[i])


@row_kernel
def map_silu(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = silu_f32(x[i])


@row_kernel
def map_erf(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = erf_f32(x[i])


@inline_jit
def _short_tail(x: np.ndarray, lo: np.uint64, hi: np.uint64) -> bool:  # pragma: no cover
    """Whether every ``|x[lo:hi]|`` is below SHORT_TAIL_HI (NaN is not), so the block can run
    the short Mills ratio (:func:`repops.math.gauss.mills_ratio_short_f32`, same bits)."""
    long = 0
    for i in range(lo, hi):
        long += not (np.abs(x[i]) < SHORT_TAIL_HI)
    return long == 0


@row_kernel
def map_gelu_erf(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        hi = min(n, (c + 1) * CHUNK)
        for b in range(c * CHUNK, hi, SCAN):
            lo, e = np.uint64(b), np.uint64(min(hi, b + SCAN))
            if _short_tail(x, lo, e):
                for i in range(lo, e):
                    out[i] = gelu_erf_f32(x[i], True)
            else:
                for i in range(lo, e):
                    out[i] = gelu_erf_f32(x[i], False)


@row_kernel
def map_gelu_tanh(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = gelu_tanh_f32(x[i])


@inline_jit
def _has_huge(x: np.ndarray, lo: np.uint64, hi: np.uint64) -> bool:  # pragma: no cover
    """Whether ``x[lo:hi]`` holds a magnitude of 2^24 or more (inf too): such a chunk runs the
    branching sin/cos, every other chunk their vectorised form (the same bits)."""
    count = 0
    for i in range(lo, hi):
        count += np.abs(x[i]) >= HUGE_F32
    return count > 0


@row_kernel
def map_sin(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))
        if _has_huge(x, lo, hi):
            for i in range(lo, hi):
                out[i] = sin_f32(x[i])
        else:
            for i in range(lo, hi):
                out[i] = sin_near_f32(x[i])


@row_kernel
def map_cos(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))
        if _has_huge(x, lo, hi):
            for i in range(lo, hi):
                out[i] = cos_f32(x[i])
        else:
            for i in range(lo, hi):
                out[i] = cos_near_f32(x[i])


@row_kernel
def map_rsqrt(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = rsqrt_f32(x[i])


@row_kernel
def map_identity(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = identity_f32(x[i])


@row_kernel
def map_square(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = square_f32(x[i])


@row_kernel
def map_cube(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = cube_f32(x[i])


@row_kernel
def map_reciprocal(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = reciprocal_f32(x[i])


@row_kernel
def map_inv_square(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = inv_square_f32(x[i])


@row_kernel
def map_sqrt_pow(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n = x.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = sqrt_pow_f32(x[i])


@row_kernel
def map_pow(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    n = a.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = pow_f32(a[i], b[i])


@row_kernel
def map_silu_backward(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    n = a.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = silu_backward_f32(a[i], b[i])


@row_kernel
def map_gelu_erf_backward(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    n = a.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        hi = min(n, (c + 1) * CHUNK)
        for s in range(c * CHUNK, hi, SCAN):
            lo, e = np.uint64(s), np.uint64(min(hi, s + SCAN))
            if _short_tail(b, lo, e):
                for i in range(lo, e):
                    out[i] = gelu_erf_backward_f32(a[i], b[i], True)
            else:
                for i in range(lo, e):
                    out[i] = gelu_erf_backward_f32(a[i], b[i], False)


@row_kernel
def map_gelu_tanh_backward(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    n = a.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(np.uint64(c * CHUNK), np.uint64(min(n, (c + 1) * CHUNK))):
            out[i] = gelu_tanh_backward_f32(a[i], b[i])


UNARY_MAPS: dict[str, Callable[[np.ndarray, np.ndarray], None]] = {
    "exp": map_exp,
    "expm1": map_expm1,
    "log": map_log,
    "log1p": map_log1p,
    "tanh": map_tanh,
    "sigmoid": map_sigmoid,
    "silu": map_silu,
    "erf": map_erf,
    "gelu_erf": map_gelu_erf,
    "gelu_tanh": map_gelu_tanh,
    "sin": map_sin,
    "cos": map_cos,
    "rsqrt": map_rsqrt,
    # pow.Tensor_Scalar's shortcut exponents (repops.math.pow), keyed by elementwise.py
    "pow_identity": map_identity,
    "pow_square": map_square,
    "pow_cube": map_cube,
    "pow_reciprocal": map_reciprocal,
    "pow_inv_square": map_inv_square,
    "pow_sqrt": map_sqrt_pow,
}
BINARY_MAPS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], None]] = {
    "pow": map_pow,
    "silu_backward": map_silu_backward,
    "gelu_erf_backward": map_gelu_erf_backward,
    "gelu_tanh_backward": map_gelu_tanh_backward,
}
