"""Berrut rational interpolation: the encoder and decoder of approximated coded computing.

Berrut's interpolant through ``(x_i, y_i)``, ``i = 0..n-1`` (nodes sorted, signs by rank)::

    r(x) = sum_i (-1)^i / (x - x_i) * y_i  /  sum_i (-1)^i / (x - x_i)

is a linear combination of the data with weights that sum to one, has no real poles for any
distinct nodes, and interpolates (``r(x_i) = y_i``). BACC (Jahani-Nezhad and Maddah-Ali,
"Berrut Approximated Coded Computing: Straggler Resistance Beyond Polynomial Computing") uses it
twice: the master encodes data with it, and decodes from whichever worker results arrived with
it — any subset of nodes gives a valid interpolant, which is why BACC tolerates any number of
stragglers at a graceful loss of accuracy.

Error bound (:func:`berrut_error_bound`) — derived here, not taken from the BACC paper, whose
constants I could not read: for ``h`` with ``|h'| <= m1`` and ``|h''| <= m2`` on [-1, 1],
pairing consecutive nodes gives, at any ``x``,

    |r(x) - h(x)| <= (m2 / 2 * sum_pairs (x_(2j+1) - x_(2j)) + [n odd] * m1) / |D(x)|,
    D(x) = sum_i (-1)^i / (x - x_i),

because ``r - h = -sum_i (-1)^i h[x_i, x] / D`` and ``h[a, x] - h[b, x] = (a - b) h[a, b, x]``
with ``|h[a, b, x]| <= m2 / 2`` (the argument of Floater and Hormann, Numer. Math. 2007, for
their d = 0 case). ``D`` is computed exactly at the points that matter (the data points the
decoder evaluates at), so the bound is rigorous and a-posteriori: it uses the nodes that
actually answered. :func:`worst_case_berrut_bound` maximises it over every straggler pattern.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from verde.coding._checks import check_int, check_number


def chebyshev_first_kind(n: int) -> np.ndarray:
    """``cos((2i+1) pi / (2n))``, ``i = 0..n-1``: the n zeros of T_n (decreasing, in (-1, 1))."""
    check_int("n", n, 1)
    return np.cos((2 * np.arange(n) + 1) * np.pi / (2 * n))


def chebyshev_second_kind(n: int) -> np.ndarray:
    """``cos(i pi / (n-1))``, ``i = 0..n-1``: the extrema of T_(n-1), both ends included."""
    check_int("n", n, 2)
    return np.cos(np.arange(n) * np.pi / (n - 1))


def berrut_matrix(nodes: Sequence[float] | np.ndarray, targets: Sequence[float] | np.ndarray
                  ) -> np.ndarray:
    """``W`` with ``r(targets[t]) = sum_i W[t, i] * y_i`` for Berrut's interpolant on ``nodes``.

    Nodes need not be sorted (signs follow their rank); a target equal to a node gets that
    node's value exactly. Rows sum to one.
    """
    x = _distinct_nodes(nodes)
    t = _points("targets", targets)
    sign = np.empty(len(x))
    sign[np.argsort(x)] = (-1.0) ** np.arange(len(x))
    diff = t[:, None] - x[None, :]
    hit = diff == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = sign[None, :] / diff
        weights = terms / terms.sum(axis=1, keepdims=True)
    exact = hit.any(axis=1)
    weights[exact] = hit[exact].astype(np.float64)
    return weights


def berrut_denominator(nodes: Sequence[float] | np.ndarray,
                       targets: Sequence[float] | np.ndarray) -> np.ndarray:
    """``|D(x)| = |sum_i (-1)^i / (x - x_i)|`` at each target (``inf`` at a node)."""
    x = np.sort(_distinct_nodes(nodes))
    t = _points("targets", targets)
    diff = t[:, None] - x[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.abs((((-1.0) ** np.arange(len(x)))[None, :] / diff).sum(axis=1))
    d[(diff == 0).any(axis=1)] = np.inf
    return d


def lebesgue_function(nodes: Sequence[float] | np.ndarray,
                      targets: Sequence[float] | np.ndarray) -> np.ndarray:
    """``sum_i |W[t, i]|``: how much an error of size delta in every answer can move r(t)."""
    return np.abs(berrut_matrix(nodes, targets)).sum(axis=1)


def berrut_error_bound(nodes: Sequence[float] | np.ndarray,
                       targets: Sequence[float] | np.ndarray, *, m1: float, m2: float
                       ) -> np.ndarray:
    """Rigorous bound on ``|r(t) - h(t)|`` per target, for ``|h'| <= m1``, ``|h''| <= m2``.

    See the module docstring for the derivation. ``h`` is any one coordinate of the function
    being interpolated (for BACC, ``f`` composed with the encoder); the bound holds for every
    coordinate whose derivatives obey ``m1``, ``m2`` on the hull of nodes and targets.
    """
    check_number("m1", m1)
    check_number("m2", m2)
    x = np.sort(_distinct_nodes(nodes))
    n = len(x)
    if n % 2 == 0:
        numerator = m2 / 2 * float(np.sum(x[1::2] - x[0::2]))
    else:  # one node stays unpaired: leave out the first or the last, whichever is cheaper
        gaps = min(float(np.sum(x[1::2][: (n - 1) // 2] - x[0::2][: (n - 1) // 2])),
                   float(np.sum(x[2::2] - x[1::2])))
        numerator = m2 / 2 * gaps + m1
    return numerator / berrut_denominator(x, targets)


def worst_case_berrut_bound(nodes: Sequence[float] | np.ndarray,
                            targets: Sequence[float] | np.ndarray, missing: int, *,
                            m1: float, m2: float, max_patterns: int = 2_000_000) -> float:
    """The largest :func:`berrut_error_bound` over targets and over every set of ``missing``
    absent nodes: what a user can promise before knowing who will be slow (or dropped).

    Enumerates all ``C(n, missing)`` patterns (vectorised, in chunks); refuses (ValueError)
    beyond ``max_patterns`` rather than return a bound that is not a bound.
    """
    check_number("m1", m1)
    check_number("m2", m2)
    x = np.sort(_distinct_nodes(nodes))
    t = _points("targets", targets)
    n = len(x)
    check_int("missing", missing, 0, n)
    count = math.comb(n, missing)
    if count > max_patterns:
        raise ValueError(f"{count} patterns of {missing} missing nodes exceed "
                         f"max_patterns={max_patterns}; raise it knowingly or use fewer nodes")
    diff = t[:, None] - x[None, :]
    on_node = (diff == 0)
    with np.errstate(divide="ignore"):
        inverse = np.where(on_node, 0.0, 1.0 / np.where(on_node, 1.0, diff))  # (targets, n)
    patterns = itertools.combinations(range(n), missing)
    worst = 0.0
    while chunk := list(itertools.islice(patterns, 65536)):
        keep = np.ones((len(chunk), n), dtype=bool)
        if missing:
            keep[np.arange(len(chunk))[:, None], np.array(chunk)] = False
        rank = np.cumsum(keep, axis=1) - 1
        sign = np.where(keep, (-1.0) ** rank, 0.0)
        kept = n - missing
        if kept % 2 == 0:
            numerator = m2 / 2 * -(sign @ x)
        else:
            last = np.where(keep & (rank == kept - 1), sign, 0.0)
            first = np.where(keep & (rank == 0), sign, 0.0)
            gaps = np.minimum(-((sign - last) @ x), (sign - first) @ x)
            numerator = m2 / 2 * gaps + m1
        denominator = np.abs(sign @ inverse.T)  # (patterns, targets)
        hit = keep @ on_node.T.astype(np.float64) > 0
        with np.errstate(divide="ignore"):
            bound = np.where(hit, 0.0, numerator[:, None] / denominator)
        worst = max(worst, float(bound.max()))
    return worst


def _distinct_nodes(nodes: Sequence[float] | np.ndarray) -> np.ndarray:
    x = _points("nodes", nodes)
    if len(x) == 0:
        raise ValueError("nodes must not be empty")
    if len(np.unique(x)) != len(x):
        raise ValueError("nodes must be distinct")
    return x


def _points(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d sequence of numbers, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite")
    return arr
