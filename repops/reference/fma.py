"""Exact fused multiply-add for the numpy reference (Python 3.11 has no ``math.fma``).

binary32: ``a*b`` is exact in binary64 (24+24 <= 53 significant bits). ``TwoSum`` splits
``p + c`` into the rounded binary64 sum ``s`` and its exact error ``e``. Rounding ``s`` to
binary32 is then the correct rounding of ``p + c`` unless ``s`` lies exactly on a binary32
midpoint with ``e != 0``, where the tie must break towards ``e`` (a binary64 sum cannot step
across a binary32 midpoint, since every midpoint is itself a binary64 number).

binary64: computed with exact rationals and correctly rounded by Python's int/int division.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def fma32(a: np.ndarray | float, b: np.ndarray | float, c: np.ndarray | float) -> np.ndarray:
    """Correctly rounded binary32 ``a*b + c`` elementwise (inputs are binary32 values)."""
    a64 = np.asarray(a, dtype=np.float32).astype(np.float64)
    b64 = np.asarray(b, dtype=np.float32).astype(np.float64)
    c64 = np.asarray(c, dtype=np.float32).astype(np.float64)
    a64, b64, c64 = np.broadcast_arrays(a64, b64, c64)
    with np.errstate(all="ignore"):
        p = a64 * b64  # exact
        s = p + c64
        bb = s - p
        e = (p - (s - bb)) + (c64 - bb)  # TwoSum: s + e == p + c exactly (finite case)
        r = s.astype(np.float32)
        r64 = r.astype(np.float64)
        # Neighbour of r on the side of s; s is a midpoint iff it sits halfway between them.
        toward = np.where(s > r64, np.inf, -np.inf).astype(np.float32)
        other = np.nextafter(r, toward)
        midpoint = (r64 != s) & ((r64 + other.astype(np.float64)) * 0.5 == s) & np.isfinite(s)
        # At a midpoint the exact value is s + e: it belongs to the neighbour e points at.
        fix = midpoint & (e != 0)
        lo = np.minimum(r, other)
        hi = np.maximum(r, other)
        corrected = np.where(e > 0, hi, lo)
        out = np.where(fix, corrected, r)
        # Non-finite cases: IEEE semantics of the plain expression are already right.
        return np.where(np.isfinite(s), out, (a64 * b64 + c64).astype(np.float32)).astype(
            np.float32
        )


def fma64(a: float, b: float, c: float) -> float:
    """Correctly rounded binary64 ``a*b + c`` for one element (exact rationals)."""
    if not all(np.isfinite(v) for v in (a, b, c)):
        return a * b + c
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        # An exact zero takes its sign from the IEEE rules of the plain expression.
        return a * b + c
    return float(exact)  # Fraction.__float__ rounds correctly (int/int true division)
