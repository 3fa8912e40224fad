"""The trimmed mean's and MeaMed's reductions over sorted lanes, compiled for numpy input.

Why: the coordinate-wise rules hand their ``fn`` each chunk of coordinates as sorted lanes
``(cols, n)``. Whole-column numpy expressions over those lanes read every column strided by n
and make full-width float64 temporaries: at n=100, MeaMed's took 60 ms for a 100k-parameter
model against 25 ms for the sort itself. Here eight lanes are reduced side by side, each in
its own float64 accumulator, so the additions of one lane (which must stay in order) overlap
with the other seven's and nothing wider than eight values is ever written. Compiled lazily
by numba on first use (about a second per dtype and layout) and cached on disk beside this
file. No fast-math: every step is a correctly rounded IEEE operation in the order written.
The inner loops index with unsigned integers: numba then skips its negative-index wraparound,
which at n=100 was a fifth of MeaMed's time.

Trimmed mean: the kept values ``s[lo:hi]`` are added in ascending order (the torch path sums
them with ``torch.sum``, whose order is its own, so the two can differ in the last float64
bit, which the cast back to the input dtype almost always absorbs).

MeaMed: the same steps as :func:`verde.robust.coordinate.meamed_sorted`: the median, the
window of ``keep`` consecutive sorted values whose largest distance to the median is smallest
(first such start on ties; a NaN distance never wins), and the window's values added in
ascending order starting from +0.0. ``meamed_sorted`` adds every value with the ones outside
the window masked to +0.0, which gives the same bits (adding +0.0 to a sum that started at
+0.0 changes nothing), NaN and signed zeros included; tests compare the two.
"""

from __future__ import annotations

import numba
import numpy as np

#: Lanes reduced side by side: eight independent float64 additions hide the adder's latency.
LANES = 8


def trimmed_sums(s: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``s[:, lo] + ... + s[:, hi-1]`` per row of sorted lanes ``s`` (cols, n), in float64 and
    in that order; a column-major ``s`` (the sorting network's rows, transposed) runs the
    row-layout kernel on its rows."""
    if s.flags.f_contiguous:
        return trimmed_sum_rows(s.T, lo, hi)
    return trimmed_sum_lanes(s, lo, hi)


def meamed_means(s: np.ndarray, keep: int) -> np.ndarray:
    """MeaMed per row of sorted lanes ``s`` (cols, n), as float64, in the layout's kernel
    (see :func:`trimmed_sums`)."""
    if s.flags.f_contiguous:
        return meamed_rows(s.T, keep)
    return meamed_lanes(s, keep)


@numba.njit(inline="always")
def _maximum(a: float, b: float) -> float:
    """``np.maximum`` for two floats: NaN when either is NaN."""
    return a if (a > b) | (a != a) else b  # noqa: PLR0124 - a != a: a is NaN (no branch)


@numba.njit(inline="always", boundscheck=False)
def _padded_tail(s: np.ndarray, first: int) -> np.ndarray:
    """Lanes ``first ..`` of ``s`` in a ``(LANES, n)`` block, the last one repeated."""
    cols = s.shape[0]
    pad = np.empty((LANES, s.shape[1]), s.dtype)
    for j in range(LANES):
        pad[j] = s[min(first + j, cols - 1)]
    return pad


@numba.njit(inline="always", boundscheck=False)
def _trimmed_group(  # noqa: PLR0917 - numba: a compiled helper takes its arguments in order
        s: np.ndarray, a: int, lo: int, hi: int, out: np.ndarray, o: int,
        total: np.ndarray) -> None:
    for j in range(LANES):
        total[j] = s[a + j, lo]
    for k in range(lo + 1, hi):
        u = np.uint64(k)
        for j in range(LANES):
            total[j] = total[j] + s[np.uint64(a + j), u]
    for j in range(LANES):
        out[o + j] = total[j]


@numba.njit(cache=True, boundscheck=False)
def trimmed_sum_lanes(s: np.ndarray, lo: int, hi: int) -> np.ndarray:  # pragma: no cover
    """Per row of ``s`` (cols, n), sorted ascending: ``s[lo] + s[lo+1] + ... + s[hi-1]`` in
    float64, added in that order (``lo < hi``)."""
    cols = s.shape[0]
    out = np.empty(cols + LANES)
    total = np.empty(LANES)
    full = cols - cols % LANES
    for a in range(0, full, LANES):
        _trimmed_group(s, a, lo, hi, out, a, total)
    if full < cols:
        _trimmed_group(_padded_tail(s, full), 0, lo, hi, out, full, total)
    return out[:cols]


@numba.njit(inline="always", boundscheck=False)
def _meamed_group(  # noqa: PLR0917 - numba: a compiled helper takes its arguments in order
        s: np.ndarray, a: int, keep: int, out: np.ndarray, o: int, med: np.ndarray,
        best: np.ndarray, start: np.ndarray, total: np.ndarray) -> None:
    n = s.shape[1]
    lo, hi, last_start = (n - 1) // 2, n // 2, n - keep
    for j in range(LANES):
        m = np.float64(s[a + j, lo]) * 0.5 + np.float64(s[a + j, hi]) * 0.5
        med[j] = m
        best[j] = _maximum(m - s[a + j, 0], s[a + j, keep - 1] - m)
        start[j] = 0
        total[j] = 0.0
    for st in range(1, last_start + 1):
        lo_k, hi_k = np.uint64(st), np.uint64(st + keep - 1)
        for j in range(LANES):
            lane = np.uint64(a + j)
            spread = _maximum(med[j] - s[lane, lo_k], s[lane, hi_k] - med[j])
            better = spread < best[j]
            best[j] = spread if better else best[j]
            start[j] = st if better else start[j]
    for i in range(keep):
        u = np.uint64(i)
        for j in range(LANES):
            total[j] = total[j] + s[np.uint64(a + j), np.uint64(start[j]) + u]
    for j in range(LANES):
        out[o + j] = total[j] / keep


@numba.njit(cache=True, boundscheck=False)
def meamed_lanes(s: np.ndarray, keep: int) -> np.ndarray:  # pragma: no cover - compiled
    """Per row of ``s`` (cols, n), sorted ascending (NaN last): the mean of the ``keep``
    values closest to the median, as float64 (see :func:`coordinate.meamed_sorted`)."""
    cols = s.shape[0]
    out = np.empty(cols + LANES)
    med, best, total = np.empty(LANES), np.empty(LANES), np.empty(LANES)
    start = np.empty(LANES, np.int64)
    full = cols - cols % LANES
    for a in range(0, full, LANES):
        _meamed_group(s, a, keep, out, a, med, best, start, total)
    if full < cols:
        _meamed_group(_padded_tail(s, full), 0, keep, out, full, med, best, start, total)
    return out[:cols]


#: Columns per block of the row-layout kernels: their float64 temporaries stay in L1.
COLUMNS_PER_BLOCK = 512


@numba.njit(cache=True, boundscheck=False)
def trimmed_sum_rows(rows: np.ndarray, lo: int, hi: int) -> np.ndarray:  # pragma: no cover
    """:func:`trimmed_sum_lanes` for the row layout ``(n, cols)`` (row k: every coordinate's
    k-th smallest value, as the sorting network leaves them): the same sums, in the same
    order, vectorised across columns."""
    cols = rows.shape[1]
    out = np.empty(cols)
    for c in range(cols):
        out[c] = rows[lo, c]
    for k in range(lo + 1, hi):
        for c in range(cols):
            out[c] = out[c] + rows[k, c]
    return out


@numba.njit(cache=True, boundscheck=False)
def meamed_rows(rows: np.ndarray, keep: int) -> np.ndarray:  # pragma: no cover - compiled
    """:func:`meamed_lanes` for the row layout ``(n, cols)``, vectorised across columns: the
    window's values are added with those outside it masked to +0.0, as in ``meamed_sorted``
    (the same bits as adding the window alone). Each block of columns is first copied, as
    float64, into a local array: the compiler vectorises loops over that, not over the
    caller's array."""
    n, cols = rows.shape
    lo, hi, last_start = (n - 1) // 2, n // 2, n - keep
    width = COLUMNS_PER_BLOCK
    out = np.empty(cols)
    med, best, total = np.empty(width), np.empty(width), np.empty(width)
    start = np.empty(width, np.int64)
    w = np.zeros((n, width))
    for a in range(0, cols, width):
        g = min(width, cols - a)
        for k in range(n):
            for c in range(g):
                w[k, c] = rows[k, a + c]
        # Whole-width loops (columns past g hold an earlier block's values, never written out):
        # a fixed trip count is what lets them vectorise.
        for c in range(width):
            m = w[lo, c] * 0.5 + w[hi, c] * 0.5
            med[c] = m
            best[c] = _maximum(m - w[0, c], w[keep - 1, c] - m)
            start[c] = 0
            total[c] = 0.0
        for st in range(1, last_start + 1):
            for c in range(width):
                spread = _maximum(med[c] - w[st, c], w[st + keep - 1, c] - med[c])
                better = spread < best[c]
                best[c] = spread if better else best[c]
                start[c] = st if better else start[c]
        for k in range(n):
            for c in range(width):
                inside = (start[c] <= k) & (start[c] + keep > k)
                total[c] = total[c] + (w[k, c] if inside else 0.0)
        for c in range(g):
            out[a + c] = total[c] / keep
    return out
