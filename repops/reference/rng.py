"""Numpy/Python reference for repops' random numbers (spec elementwise.md, "random numbers").

Philox4x32-10 with Python integers straight from Salmon et al. (SC'11); the word-to-number
transforms with numpy and the binary64 references of log/sin/cos. Slow: small draws only.
"""

from __future__ import annotations

import numpy as np

from repops.reference.elementwise import log64_core_reference
from repops.reference.elementwise_trig import cos_poly_reference, sin_poly_reference

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32_10_reference(
    ctr: tuple[int, int, int, int], key: tuple[int, int]
) -> tuple[int, ...]:
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK, (p0 >> 32) ^ c3 ^ k1, p0 & MASK
        k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
    return c0, c1, c2, c3


def words_reference(seed: int, stream: int, block0: int, nwords: int) -> np.ndarray:
    key = (seed & MASK, seed >> 32)
    out: list[int] = []
    b = block0
    while len(out) < nwords:
        out.extend(philox4x32_10_reference((b & MASK, b >> 32, stream & MASK, stream >> 32), key))
        b += 1
    return np.array(out[:nwords], dtype=np.uint32)


def uniform_f32_reference(words: np.ndarray) -> np.ndarray:
    return (words >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)


def uniform_f64_reference(words: np.ndarray) -> np.ndarray:
    a = (words[0::2] >> np.uint32(5)).astype(np.float64)
    b = (words[1::2] >> np.uint32(6)).astype(np.float64)
    return (a * 2.0**26 + b) * 2.0**-53


def box_muller_reference(words: np.ndarray, n: int) -> np.ndarray:
    u = ((words[0::2] >> np.uint32(8)).astype(np.float64) + 1.0) * 2.0**-24
    rad = np.sqrt(0.0 - 2.0 * log64_core_reference(u))
    a = (words[1::2] >> np.uint32(8)).astype(np.int64)
    q = (a + (1 << 21)) >> 22
    r = (a - (q << 22)).astype(np.float64) * (float.fromhex("0x1.921fb54442d18p+0") * 2.0**-22)
    s, c = sin_poly_reference(r), cos_poly_reference(r)
    qm = q & 3
    cs = np.select([qm == 0, qm == 1, qm == 2], [c, -s, -c], s)
    sn = np.select([qm == 0, qm == 1, qm == 2], [s, c, -s], -c)
    out = np.empty(2 * len(u))
    out[0::2] = rad * cs
    out[1::2] = rad * sn
    return out[:n]


def randint_reference(words: np.ndarray, low: int, high: int) -> np.ndarray:
    span = high - low
    r = [int(a) | (int(b) << 32) for a, b in zip(words[0::2], words[1::2], strict=True)]
    return np.array([low + ((v * span) >> 64) for v in r], dtype=np.int64)


def randperm_reference(words: np.ndarray) -> np.ndarray:
    keys = [int(a) | (int(b) << 32) for a, b in zip(words[0::2], words[1::2], strict=True)]
    return np.array(sorted(range(len(keys)), key=lambda i: (keys[i], i)), dtype=np.int64)
