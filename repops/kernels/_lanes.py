"""The 16-lane summation of SPEC.md C4 (LSUM / LDOT), written out lane by lane.

Why one home: every reduction in ``spec/reductions.md`` is built from the same lane sum, so the
lane assignment (element i goes to lane ``i mod 16``) and the fixed combining tree exist once.

Why sixteen named accumulators instead of a loop over an array: the lanes are independent, so
``s0 += x[i]; ...; s15 += x[i + 15]`` is sixteen isomorphic adds that LLVM's SLP vectorizer
packs into one AVX-512 register (or two AVX2 / four SSE registers) without reassociating
anything — lane l still only ever receives ``x[16*b + l]``. (numba ships with SLP
vectorization off; :mod:`repops._numba` turns it on while repops' own kernels compile. Either
way the bits are the same: only the instruction selection differs.) Named scalars also stay in
registers, which an accumulator array loaded and stored every step does not.

A tail of ``r < 16`` elements goes to lanes ``0..r-1``; the other lanes are untouched (they are
never padded with zeros, which for LDOT could turn a ``-0.0`` lane into ``+0.0``).
"""

from __future__ import annotations

import numpy as np

from repops._numba import fma, jit

LANES = 16


@jit
def tree16(  # noqa: PLR0917 - one argument per lane, kept in registers by the callers
    s0: float,
    s1: float,
    s2: float,
    s3: float,
    s4: float,
    s5: float,
    s6: float,
    s7: float,
    s8: float,
    s9: float,
    s10: float,
    s11: float,
    s12: float,
    s13: float,
    s14: float,
    s15: float,
) -> float:  # pragma: no cover - compiled
    """The fixed combining tree of C4 over the 16 lane accumulators (its one home).

    Every lane function below ends here; numba inlines this small function into each of them,
    and the additions are the same IEEE operations in the same order as if written out.
    """
    return (((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))) + (
        ((s8 + s9) + (s10 + s11)) + ((s12 + s13) + (s14 + s15))
    )


@jit
def lane_tree(acc: np.ndarray) -> float:  # pragma: no cover - compiled
    """The C4 combining tree over 16 lane accumulators held in an array."""
    return tree16(
        acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7],
        acc[8], acc[9], acc[10], acc[11], acc[12], acc[13], acc[14], acc[15],
    )  # fmt: skip


@jit
def lane_sum(x: np.ndarray) -> float:  # pragma: no cover - compiled
    """LSUM(x_0..x_{n-1}) of a contiguous 1-D row (C4)."""
    n = x.shape[0]
    nb = n // LANES
    z = x.dtype.type(-0.0)
    s0 = z
    s1 = z
    s2 = z
    s3 = z
    s4 = z
    s5 = z
    s6 = z
    s7 = z
    s8 = z
    s9 = z
    s10 = z
    s11 = z
    s12 = z
    s13 = z
    s14 = z
    s15 = z
    for b in range(nb):
        i = b * LANES
        s0 += x[i + 0]
        s1 += x[i + 1]
        s2 += x[i + 2]
        s3 += x[i + 3]
        s4 += x[i + 4]
        s5 += x[i + 5]
        s6 += x[i + 6]
        s7 += x[i + 7]
        s8 += x[i + 8]
        s9 += x[i + 9]
        s10 += x[i + 10]
        s11 += x[i + 11]
        s12 += x[i + 12]
        s13 += x[i + 13]
        s14 += x[i + 14]
        s15 += x[i + 15]
    i = nb * LANES
    r = n - i
    if r > 0:
        s0 += x[i + 0]
    if r > 1:
        s1 += x[i + 1]
    if r > 2:
        s2 += x[i + 2]
    if r > 3:
        s3 += x[i + 3]
    if r > 4:
        s4 += x[i + 4]
    if r > 5:
        s5 += x[i + 5]
    if r > 6:
        s6 += x[i + 6]
    if r > 7:
        s7 += x[i + 7]
    if r > 8:
        s8 += x[i + 8]
    if r > 9:
        s9 += x[i + 9]
    if r > 10:
        s10 += x[i + 10]
    if r > 11:
        s11 += x[i + 11]
    if r > 12:
        s12 += x[i + 12]
    if r > 13:
        s13 += x[i + 13]
    if r > 14:
        s14 += x[i + 14]
    return tree16(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15)


@jit
def lane_dot(x: np.ndarray, y: np.ndarray) -> float:  # pragma: no cover - compiled
    """LDOT(x, y) of two contiguous 1-D rows: lane l does ``s_l = fma(x_i, y_i, s_l)`` (C4)."""
    n = x.shape[0]
    nb = n // LANES
    z = x.dtype.type(-0.0)
    s0 = z
    s1 = z
    s2 = z
    s3 = z
    s4 = z
    s5 = z
    s6 = z
    s7 = z
    s8 = z
    s9 = z
    s10 = z
    s11 = z
    s12 = z
    s13 = z
    s14 = z
    s15 = z
    for b in range(nb):
        i = b * LANES
        s0 = fma(x[i + 0], y[i + 0], s0)
        s1 = fma(x[i + 1], y[i + 1], s1)
        s2 = fma(x[i + 2], y[i + 2], s2)
        s3 = fma(x[i + 3], y[i + 3], s3)
        s4 = fma(x[i + 4], y[i + 4], s4)
        s5 = fma(x[i + 5], y[i + 5], s5)
        s6 = fma(x[i + 6], y[i + 6], s6)
        s7 = fma(x[i + 7], y[i + 7], s7)
        s8 = fma(x[i + 8], y[i + 8], s8)
        s9 = fma(x[i + 9], y[i + 9], s9)
        s10 = fma(x[i + 10], y[i + 10], s10)
        s11 = fma(x[i + 11], y[i + 11], s11)
        s12 = fma(x[i + 12], y[i + 12], s12)
        s13 = fma(x[i + 13], y[i + 13], s13)
        s14 = fma(x[i + 14], y[i + 14], s14)
        s15 = fma(x[i + 15], y[i + 15], s15)
    i = nb * LANES
    r = n - i
    if r > 0:
        s0 = fma(x[i + 0], y[i + 0], s0)
    if r > 1:
        s1 = fma(x[i + 1], y[i + 1], s1)
    if r > 2:
        s2 = fma(x[i + 2], y[i + 2], s2)
    if r > 3:
        s3 = fma(x[i + 3], y[i + 3], s3)
    if r > 4:
        s4 = fma(x[i + 4], y[i + 4], s4)
    if r > 5:
        s5 = fma(x[i + 5], y[i + 5], s5)
    if r > 6:
        s6 = fma(x[i + 6], y[i + 6], s6)
    if r > 7:
        s7 = fma(x[i + 7], y[i + 7], s7)
    if r > 8:
        s8 = fma(x[i + 8], y[i + 8], s8)
    if r > 9:
        s9 = fma(x[i + 9], y[i + 9], s9)
    if r > 10:
        s10 = fma(x[i + 10], y[i + 10], s10)
    if r > 11:
        s11 = fma(x[i + 11], y[i + 11], s11)
    if r > 12:
        s12 = fma(x[i + 12], y[i + 12], s12)
    if r > 13:
        s13 = fma(x[i + 13], y[i + 13], s13)
    if r > 14:
        s14 = fma(x[i + 14], y[i + 14], s14)
    return tree16(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15)


@jit
def lane_dev_sq(x: np.ndarray, m: float) -> float:  # pragma: no cover - compiled
    """LDOT(d, d) with ``d_i = x_i - m``: the sum of squared deviations (variance, layer norm)."""
    n = x.shape[0]
    nb = n // LANES
    z = x.dtype.type(-0.0)
    s0 = z
    s1 = z
    s2 = z
    s3 = z
    s4 = z
    s5 = z
    s6 = z
    s7 = z
    s8 = z
    s9 = z
    s10 = z
    s11 = z
    s12 = z
    s13 = z
    s14 = z
    s15 = z
    for b in range(nb):
        i = b * LANES
        s0 = fma(x[i + 0] - m, x[i + 0] - m, s0)
        s1 = fma(x[i + 1] - m, x[i + 1] - m, s1)
        s2 = fma(x[i + 2] - m, x[i + 2] - m, s2)
        s3 = fma(x[i + 3] - m, x[i + 3] - m, s3)
        s4 = fma(x[i + 4] - m, x[i + 4] - m, s4)
        s5 = fma(x[i + 5] - m, x[i + 5] - m, s5)
        s6 = fma(x[i + 6] - m, x[i + 6] - m, s6)
        s7 = fma(x[i + 7] - m, x[i + 7] - m, s7)
        s8 = fma(x[i + 8] - m, x[i + 8] - m, s8)
        s9 = fma(x[i + 9] - m, x[i + 9] - m, s9)
        s10 = fma(x[i + 10] - m, x[i + 10] - m, s10)
        s11 = fma(x[i + 11] - m, x[i + 11] - m, s11)
        s12 = fma(x[i + 12] - m, x[i + 12] - m, s12)
        s13 = fma(x[i + 13] - m, x[i + 13] - m, s13)
        s14 = fma(x[i + 14] - m, x[i + 14] - m, s14)
        s15 = fma(x[i + 15] - m, x[i + 15] - m, s15)
    i = nb * LANES
    r = n - i
    if r > 0:
        s0 = fma(x[i + 0] - m, x[i + 0] - m, s0)
    if r > 1:
        s1 = fma(x[i + 1] - m, x[i + 1] - m, s1)
    if r > 2:
        s2 = fma(x[i + 2] - m, x[i + 2] - m, s2)
    if r > 3:
        s3 = fma(x[i + 3] - m, x[i + 3] - m, s3)
    if r > 4:
        s4 = fma(x[i + 4] - m, x[i + 4] - m, s4)
    if r > 5:
        s5 = fma(x[i + 5] - m, x[i + 5] - m, s5)
    if r > 6:
        s6 = fma(x[i + 6] - m, x[i + 6] - m, s6)
    if r > 7:
        s7 = fma(x[i + 7] - m, x[i + 7] - m, s7)
    if r > 8:
        s8 = fma(x[i + 8] - m, x[i + 8] - m, s8)
    if r > 9:
        s9 = fma(x[i + 9] - m, x[i + 9] - m, s9)
    if r > 10:
        s10 = fma(x[i + 10] - m, x[i + 10] - m, s10)
    if r > 11:
        s11 = fma(x[i + 11] - m, x[i + 11] - m, s11)
    if r > 12:
        s12 = fma(x[i + 12] - m, x[i + 12] - m, s12)
    if r > 13:
        s13 = fma(x[i + 13] - m, x[i + 13] - m, s13)
    if r > 14:
        s14 = fma(x[i + 14] - m, x[i + 14] - m, s14)
    return tree16(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15)


@jit
def lane_abs_sum(x: np.ndarray) -> float:  # pragma: no cover - compiled
    """LSUM(|x_i|) (the 1-norm)."""
    n = x.shape[0]
    nb = n // LANES
    z = x.dtype.type(-0.0)
    s0 = z
    s1 = z
    s2 = z
    s3 = z
    s4 = z
    s5 = z
    s6 = z
    s7 = z
    s8 = z
    s9 = z
    s10 = z
    s11 = z
    s12 = z
    s13 = z
    s14 = z
    s15 = z
    for b in range(nb):
        i = b * LANES
        s0 += abs(x[i + 0])
        s1 += abs(x[i + 1])
        s2 += abs(x[i + 2])
        s3 += abs(x[i + 3])
        s4 += abs(x[i + 4])
        s5 += abs(x[i + 5])
        s6 += abs(x[i + 6])
        s7 += abs(x[i + 7])
        s8 += abs(x[i + 8])
        s9 += abs(x[i + 9])
        s10 += abs(x[i + 10])
        s11 += abs(x[i + 11])
        s12 += abs(x[i + 12])
        s13 += abs(x[i + 13])
        s14 += abs(x[i + 14])
        s15 += abs(x[i + 15])
    i = nb * LANES
    r = n - i
    if r > 0:
        s0 += abs(x[i + 0])
    if r > 1:
        s1 += abs(x[i + 1])
    if r > 2:
        s2 += abs(x[i + 2])
    if r > 3:
        s3 += abs(x[i + 3])
    if r > 4:
        s4 += abs(x[i + 4])
    if r > 5:
        s5 += abs(x[i + 5])
    if r > 6:
        s6 += abs(x[i + 6])
    if r > 7:
        s7 += abs(x[i + 7])
    if r > 8:
        s8 += abs(x[i + 8])
    if r > 9:
        s9 += abs(x[i + 9])
    if r > 10:
        s10 += abs(x[i + 10])
    if r > 11:
        s11 += abs(x[i + 11])
    if r > 12:
        s12 += abs(x[i + 12])
    if r > 13:
        s13 += abs(x[i + 13])
    if r > 14:
        s14 += abs(x[i + 14])
    return tree16(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15)
