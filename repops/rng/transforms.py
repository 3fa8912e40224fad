"""From Philox words to numbers (spec elementwise.md, "random numbers"): compiled kernels.

- uniform binary32 in [0, 1): ``(w >> 8) * 2^-24`` (exact; 1 word per element).
- uniform binary64 in [0, 1): ``((w_2i >> 5) * 2^26 + (w_2i+1 >> 6)) * 2^-53`` (2 words).
- standard normal (Box & Muller, "A note on the generation of random normal deviates", Ann.
  Math. Stat. 1958), in binary64 with repops' own log/sqrt/sin/cos: element pair (2m, 2m+1)
  uses words (2m, 2m+1): ``u = ((w_2m >> 8) + 1) * 2^-24`` in (0, 1],
  ``rad = sqrt(0 - 2*log(u))``, angle = ``2 pi a / 2^24`` with ``a = w_2m+1 >> 8``, evaluated
  exactly reduced: ``q = (a + 2^21) >> 22``, ``t = a - q*2^22``, ``r = t * (pi/2 * 2^-22)``;
  element 2m = rad * cos, element 2m+1 = rad * sin (quadrant q mod 4).
- 64-bit integers: ``w_2i | (w_2i+1 << 32)``; bounded integers ``low + mulhi64(r, range)``
  (Lemire's multiply-shift without rejection: bias below range / 2^64).
"""

from __future__ import annotations

import numba
import numpy as np

from repops._numba import jit
from repops.kernels._rows import row_kernel
from repops.math.log import log64_core
from repops.math.trig import cos_poly, sin_poly

CHUNK = 4096
TWO_M24_F32 = np.float32(2.0**-24)
TWO_M24 = 2.0**-24
TWO_M53 = 2.0**-53
TWO_26 = 2.0**26
PIO2_2M22 = float.fromhex("0x1.921fb54442d18p+0") * 2.0**-22
U8 = np.uint64(8)
U5 = np.uint64(5)
U6 = np.uint64(6)
U32 = np.uint64(32)
MASK32 = np.uint64(0xFFFFFFFF)


@row_kernel
def map_uniform_f32(words: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    n = out.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            out[i] = np.float32(np.uint64(words[i]) >> U8) * TWO_M24_F32


@row_kernel
def map_uniform_f64(words: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    n = out.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            a = np.float64(np.uint64(words[2 * i]) >> U5)
            b = np.float64(np.uint64(words[2 * i + 1]) >> U6)
            out[i] = (a * TWO_26 + b) * TWO_M53


@row_kernel
def map_box_muller(words: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    n = out.size
    for p in numba.prange((n + 1) // 2):
        u = np.float64((np.uint64(words[2 * p]) >> U8) + np.uint64(1)) * TWO_M24
        rad = np.sqrt(0.0 - 2.0 * log64_core(u))
        a = np.int64(np.uint64(words[2 * p + 1]) >> U8)
        q = (a + (1 << 21)) >> 22
        r = np.float64(a - (q << 22)) * PIO2_2M22
        s = sin_poly(r)
        co = cos_poly(r)
        qm = q & 3
        if qm == 0:
            cs, sn = co, s
        elif qm == 1:
            cs, sn = -s, co
        elif qm == 2:
            cs, sn = -co, -s
        else:
            cs, sn = s, -co
        out[2 * p] = rad * cs
        if 2 * p + 1 < n:
            out[2 * p + 1] = rad * sn


@jit
def mulhi64(a: np.uint64, b: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """floor(a * b / 2^64) for uint64 a, b, from 32-bit halves (exact)."""
    a0 = a & MASK32
    a1 = a >> U32
    b0 = b & MASK32
    b1 = b >> U32
    lolo = a0 * b0
    hilo = a1 * b0
    lohi = a0 * b1
    cross = (lolo >> U32) + (hilo & MASK32) + lohi
    return a1 * b1 + (hilo >> U32) + (cross >> U32)


@row_kernel
def map_randint(  # pragma: no cover - compiled
    words: np.ndarray, low: np.int64, span: np.uint64, out: np.ndarray
) -> None:
    n = out.size
    for c in numba.prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            r = np.uint64(words[2 * i]) | (np.uint64(words[2 * i + 1]) << U32)
            out[i] = low + np.int64(mulhi64(r, span))


def keys64(words: np.ndarray) -> np.ndarray:
    """64-bit keys ``w_2i | (w_2i+1 << 32)`` (numpy; exact integer operations)."""
    w = words.astype(np.uint64)
    return w[0::2] | (w[1::2] << np.uint64(32))
