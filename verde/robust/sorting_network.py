"""Sorting a few workers' values per coordinate with a sorting network over whole rows.

Why: the coordinate-wise rules (median, trimmed mean, MeaMed) need each coordinate's n values
in order. Sorting ``d`` lanes of a handful of values each is dominated by the per-lane cost of
a general sort; a sorting network instead orders every coordinate at once, each comparator two
vectorised passes (``minimum``/``maximum``) over contiguous rows, and for n up to
``NETWORK_MAX_N`` that is several times faster than sorting lanes. The network is Batcher's
odd-even merge sort (Batcher 1968, "Sorting networks and their applications"; Knuth, TAOCP
vol. 3, 5.3.4), pruned of the comparators that touch positions at or past n (they would
compare padding that sorts last anyway). Sorting is exact, so the result is the same multiset
in the same order as any sort, except that NaN (which ``minimum`` propagates) must be routed to
a real sort by the caller.
"""

from __future__ import annotations

import functools

import numpy as np

#: Up to this many workers the coordinate-wise rules use the network (above it, numpy's sort
#: of contiguous lanes is faster: the network's comparator count grows as n log^2 n).
NETWORK_MAX_N = 24

#: Coordinates per block: every row of a block stays in the core's cache during the network.
NETWORK_BLOCK = 1 << 14


@functools.cache
def odd_even_merge_network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort for ``n`` inputs:
    applying ``(min, max)`` to positions ``(i, j)`` in order sorts any input ascending."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    size = 1
    while size < n:
        size *= 2
    pairs: list[tuple[int, int]] = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    lo, hi = i + j, i + j + k
                    if lo // (2 * p) == hi // (2 * p) and hi < n:
                        pairs.append((lo, hi))
            k //= 2
        p *= 2
    return tuple(pairs)


def network_sorted_rows(x: np.ndarray) -> np.ndarray:
    """``x`` (n, cols), NaN-free, with every column sorted ascending: a new ``(n, cols)`` array
    whose row ``k`` holds each coordinate's k-th smallest value (``x`` is not written)."""
    network = odd_even_merge_network(x.shape[0])
    rows = [np.array(row, copy=True) for row in x]
    spare = np.empty_like(rows[0])
    for i, j in network:
        np.minimum(rows[i], rows[j], out=spare)
        np.maximum(rows[i], rows[j], out=rows[j])
        rows[i], spare = spare, rows[i]
    return np.stack(rows)
