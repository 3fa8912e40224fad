"""Subset rules: MDA and SMEA, exact by search with pruning instead of enumeration.

Both pick the subset S of n-f workers that looks least spread out and average it:

- MDA, minimum-diameter averaging (El Mhamdi, Guerraoui, Guirguis, Hoang & Rouault 2020,
  "Genuinely Distributed Byzantine Machine Learning"; after Rousseeuw 1985's minimum volume
  ellipsoid): S minimises max_{i,j in S} ||x_i - x_j||.
- SMEA, smallest maximum eigenvalue averaging (Allouah, Farhadkhani, Guerraoui, Gupta, Pinot &
  Stephan 2023, "Fixing by Mixing"; its analysis in Allouah et al. 2023, "Robust Distributed
  Learning: Tight Error Bounds and Breakdown Point under Data Heterogeneity"): S minimises the
  largest eigenvalue of the empirical covariance of {x_i : i in S}.

Enumerating C(n, f) subsets is hopeless at n=30 (C(30,10) = 30M). Instead:

- MDA: a subset of diameter <= t exists iff the "far graph" (edges between workers farther
  apart than t) has a vertex cover of at most f workers. Vertex cover of size <= f is
  fixed-parameter tractable: branching on a max-degree vertex (take it, or take all its
  neighbours) with the bound |E| <= f * maxdeg explores at most ~2^f nodes, usually far fewer.
  A binary search over the n(n-1)/2 candidate diameters finds the optimum; a second pass makes
  the answer canonical: the lexicographically smallest optimal index set (exactly what
  enumerating ``itertools.combinations`` in order and keeping the first minimum returns).
- SMEA: the scatter matrix sum_{i in S} (x_i - mean_S)(x_i - mean_S)^T only grows (in the PSD
  order) when a point is added, so its top eigenvalue is a lower bound for every completion of
  a partial subset: depth-first branch and bound over include/exclude decisions, seeded with a
  greedy solution. Every eigenvalue comes from the centred Gram matrix of the subset (size at
  most n-f), never from d x d matrices. Small instances are enumerated in batches instead.

If the search exceeds its node budget the rule falls back to the greedy subset and emits an
:class:`~verde.robust.errors.ApproximationWarning` saying so.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from typing import Any

import numpy as np

from verde.robust._core import Array, Stack, check_f, drop_nonfinite, pairwise_sq_distances, require
from verde.robust.base import rule_class, run_rule
from verde.robust.coordinate import _count
from verde.robust.errors import ApproximationWarning

#: Search nodes allowed before the exact search gives up and falls back to the greedy subset.
NODE_BUDGET = 2_000_000
#: SMEA's branch and bound costs far more per node (an eigenvalue per node); its own budget.
SMEA_NODE_BUDGET = 20_000
#: SMEA enumerates all subsets in batches (with eigenvalue bounds) when there are at most this
#: many; C(16, 5) = 4368, C(20, 6) = 38760.
SMEA_ENUMERATION_LIMIT = 100_000


class _BudgetExceeded(Exception):
    pass


class _VertexCover:
    """Decide 'vertex cover of size <= k' on a graph of <= ~64 vertices held as int bitmasks."""

    def __init__(self, adj: list[int], budget: int) -> None:
        self.adj = adj
        self.budget = budget
        self.nodes = 0

    def solve(self, alive: int, k: int) -> int | None:
        self.nodes += 1
        if self.nodes > self.budget:
            raise _BudgetExceeded
        adj = self.adj
        best_v, best_deg, deg_sum = -1, 0, 0
        m = alive
        while m:
            low = m & -m
            v = low.bit_length() - 1
            m ^= low
            deg = (adj[v] & alive).bit_count()
            deg_sum += deg
            if deg > best_deg:
                best_v, best_deg = v, deg
        if best_deg == 0:
            return 0
        if k == 0 or deg_sum // 2 > k * best_deg:
            return None
        bit = 1 << best_v
        r = self.solve(alive & ~bit, k - 1)
        if r is not None:
            return r | bit
        if best_deg > k:
            return None  # v must be in any cover of size <= k, and that failed
        nb = self.adj[best_v] & alive
        r = self.solve(alive & ~nb, k - best_deg)
        return None if r is None else r | nb


def _far_adjacency(dist: np.ndarray, t: float) -> list[int]:
    n = dist.shape[0]
    far = dist > t
    np.fill_diagonal(far, False)
    if n <= 62:
        return [int(v) for v in far.astype(np.int64) @ (np.int64(1) << np.arange(n))]
    return [sum(1 << j for j in np.flatnonzero(far[i])) for i in range(n)]


def _feasible(dist: np.ndarray, t: float, f: int, vc_budget: list[int], *,
              included: int = 0, excluded: int = 0) -> int | None:
    """A set of <= f workers to drop so that the rest has diameter <= t (or None).

    ``included`` workers must stay, ``excluded`` ones are already dropped (and counted).
    """
    n = dist.shape[0]
    adj = _far_adjacency(dist, t)
    full = (1 << n) - 1
    k = f - excluded.bit_count()
    forced = 0
    m = included
    while m:
        low = m & -m
        v = low.bit_length() - 1
        m ^= low
        if adj[v] & included:
            return None
        forced |= adj[v]
    forced &= ~excluded
    k -= forced.bit_count()
    if k < 0:
        return None
    alive = full & ~excluded & ~forced
    solver = _VertexCover(adj, vc_budget[0])
    cover = solver.solve(alive, k)
    vc_budget[0] -= solver.nodes
    if cover is None:
        return None
    return cover | forced | excluded


def mda_subset(dist: np.ndarray, f: int, budget: int = NODE_BUDGET) -> tuple[np.ndarray, bool]:
    """(indices of the minimum-diameter subset of n-f workers, exact?) from squared distances."""
    n = dist.shape[0]
    if f == 0:
        return np.arange(n), True
    iu = np.triu_indices(n, 1)
    cands = np.unique(dist[iu])
    left = [budget]
    try:
        lo, hi = 0, cands.size - 1
        while lo < hi:  # smallest candidate diameter with a feasible subset
            mid = (lo + hi) // 2
            if _feasible(dist, float(cands[mid]), f, left) is not None:
                hi = mid
            else:
                lo = mid + 1
        t = float(cands[lo])
        included, excluded = 0, 0
        for i in range(n):  # canonical: lexicographically smallest optimal subset
            if included.bit_count() == n - f:  # full: the rest is dropped
                break
            if (n - i) + included.bit_count() == n - f:  # the rest must all be included
                included |= ((1 << n) - 1) & ~((1 << i) - 1)
                break
            if excluded.bit_count() == f:
                included |= ((1 << n) - 1) & ~((1 << i) - 1)
                break
            trial = included | (1 << i)
            if _feasible(dist, t, f, left, included=trial, excluded=excluded) is not None:
                included |= 1 << i
            else:
                excluded |= 1 << i
        chosen = np.array([i for i in range(n) if included >> i & 1], dtype=np.int64)
        return chosen, True
    except _BudgetExceeded:
        return _greedy_mda(dist, f), False


def _greedy_mda(dist: np.ndarray, f: int) -> np.ndarray:
    """Drop, f times, the endpoint of the current diameter pair with the larger distance sum."""
    keep = list(range(dist.shape[0]))
    for _ in range(f):
        sub = dist[np.ix_(keep, keep)]
        i, j = np.unravel_index(int(np.argmax(sub)), sub.shape)
        drop = i if sub[i].sum() >= sub[j].sum() else j
        keep.pop(int(drop))
    return np.array(keep, dtype=np.int64)


def _mda_kernel(stack: Stack, f: int, budget: int) -> Array:
    stack, f = drop_nonfinite(stack, f)
    chosen, exact = mda_subset(pairwise_sq_distances(stack), f, budget)
    if not exact:
        warnings.warn(f"mda: exact search exceeded {budget} nodes (n={stack.n}, f={f}); using "
                      "the greedy subset instead of the exact minimum-diameter one",
                      ApproximationWarning, stacklevel=4)
    return stack.subset_average(chosen)


def mda(inputs: Any, f: int, *, budget: int = NODE_BUDGET, weights: Any = None,
        deterministic: bool = False) -> Array:
    """Minimum-diameter averaging (El Mhamdi et al. 2020), exact by vertex-cover search.

    Needs n > 2f. Ties between optimal subsets go to the lexicographically smallest index set.
    ``weights``: average the chosen subset by these weights (e.g. example counts).
    """
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "mda", n, f, "n > 2f")
    return run_rule(_mda_kernel, inputs, deterministic=deterministic, weights=weights, f=f,
                    budget=budget)


def _top_eig_centered(g: np.ndarray) -> float:
    """Largest eigenvalue of the centred Gram matrix = top eigenvalue of the scatter matrix."""
    m = g.shape[0]
    if m <= 1:
        return 0.0
    r = g.mean(axis=1)
    c = g - r[:, None] - r[None, :] + r.mean()
    return float(np.linalg.eigvalsh(c)[-1])


def _batched_top_eig(g: np.ndarray, subsets: np.ndarray, squarings: int = 4) -> np.ndarray:
    """Top scatter eigenvalue of each subset; exact where it can matter, bounds elsewhere.

    Repeated squaring (normalised each time) sandwiches every lambda_max of a centred Gram
    matrix K (PSD, size k): the Rayleigh quotient of a column of K^(2^s) is below it and
    trace(K^(2^s))^(1/2^s) is above it, at most k^(1/2^s) times lambda_max. Only subsets whose
    lower bound does not exceed the smallest upper bound can be the minimiser; those get an
    exact eigenvalue, the others keep their lower bound (above the minimum, never selected).
    """
    count = subsets.shape[0]
    k = g[subsets[:, :, None], subsets[:, None, :]]
    r = k.mean(axis=2)
    k -= r[:, :, None]
    k -= r[:, None, :]
    k += r.mean(axis=1)[:, None, None]
    c = np.sqrt(np.einsum("bij,bij->b", k, k))
    c[c == 0] = 1.0
    m = k / c[:, None, None]
    logs = np.log(c)
    for _ in range(squarings):
        m = m @ m
        c = np.sqrt(np.einsum("bij,bij->b", m, m))
        c[c == 0] = 1.0
        m /= c[:, None, None]
        logs = 2 * logs + np.log(c)
    tr = np.maximum(np.einsum("bii->b", m), 1e-300)
    upper = np.exp((np.log(tr) + logs) / (1 << squarings))
    col = np.argmax(np.einsum("bij,bij->bj", m, m), axis=1)
    v = m[np.arange(count), :, col]
    vv = np.einsum("bi,bi->b", v, v)
    vv[vv == 0] = 1.0
    lower = np.einsum("bi,bij,bj->b", v, k, v) / vv
    out = lower.copy()
    maybe = np.flatnonzero(lower <= upper.min() * (1 + 1e-9) + 1e-300)
    if maybe.size:
        out[maybe] = np.linalg.eigvalsh(k[maybe])[:, -1]
    return out


@functools.lru_cache(maxsize=8)
def _combinations(n: int, m: int) -> np.ndarray:
    """All m-subsets of range(n) in lexicographic order, as an (C(n,m), m) array (cached)."""
    out = np.array(list(itertools.combinations(range(n), m)), dtype=np.int64)
    out.flags.writeable = False
    return out


def _greedy_smea(g: np.ndarray, f: int) -> list[int]:
    keep = list(range(g.shape[0]))
    for _ in range(f):
        vals = [_top_eig_centered(g[np.ix_(keep[:j] + keep[j + 1:], keep[:j] + keep[j + 1:])])
                for j in range(len(keep))]
        keep.pop(int(np.argmin(vals)))
    return keep


def smea_subset(g: np.ndarray, f: int, budget: int = SMEA_NODE_BUDGET) -> tuple[np.ndarray, bool]:
    """(indices of the SMEA subset of n-f workers, exact?) from the Gram matrix."""
    n = g.shape[0]
    m = n - f
    if f == 0:
        return np.arange(n), True
    if math.comb(n, f) <= SMEA_ENUMERATION_LIMIT:
        subsets = _combinations(n, m)
        best_i, best_v = 0, np.inf
        for a in range(0, subsets.shape[0], 4096):
            vals = _batched_top_eig(g, subsets[a:a + 4096])
            j = int(np.argmin(vals))
            if vals[j] < best_v:
                best_i, best_v = a + j, float(vals[j])
        return subsets[best_i], True
    greedy = _greedy_smea(g, f)
    best: list[Any] = [_top_eig_centered(g[np.ix_(greedy, greedy)]), sorted(greedy)]
    dist = np.maximum(np.diag(g)[:, None] + np.diag(g)[None, :] - 2 * g, 0.0)
    nodes = [0]

    def dfs(chosen: list[int], cand: np.ndarray) -> None:
        nodes[0] += 1
        if nodes[0] > budget:
            raise _BudgetExceeded
        need = m - len(chosen)
        if len(chosen) >= 2:
            sub = g[np.ix_(chosen, chosen)]
            r = sub.mean(axis=1)
            kc = sub - r[:, None] - r[None, :] + r.mean()
            vals, vecs = np.linalg.eigh(kc)
            lam, a = float(vals[-1]), vecs[:, -1]
            if lam >= best[0]:
                return
            if need == 0:
                best[0], best[1] = lam, sorted(chosen)
                return
            # Lower bounds on lambda_max(scatter(S + {v})) = scatter(S) + k/(k+1) b b^T,
            # b = x_v - mean_S: >= lam + c (b.u)^2 and >= c ||b||^2; also >= max d(v,s)^2/2.
            k = len(chosen)
            cross = g[np.ix_(cand, chosen)]
            rv = cross.mean(axis=1)
            b2 = np.diag(g)[cand] - 2 * rv + r.mean()
            bu = (cross - r[None, :]) @ a / np.sqrt(max(lam, 1e-300))
            c = k / (k + 1)
            bound = np.maximum(lam + c * bu * bu, c * b2)
            bound = np.maximum(bound, dist[np.ix_(cand, chosen)].max(axis=1) / 2)
            keep = bound < best[0]
            cand, bound = cand[keep], bound[keep]
            if cand.size < need:
                return
            order = np.argsort(bound, kind="stable")
            cand = cand[order]
        elif need == 0:
            return
        if cand.size == need:
            dfs(chosen + [int(v) for v in cand], cand[:0])
            return
        v = int(cand[0])
        dfs([*chosen, v], cand[1:])
        if cand.size - 1 >= need:
            dfs(chosen, cand[1:])

    start = np.argsort(dist.sum(axis=1), kind="stable")
    try:
        dfs([], start)
    except _BudgetExceeded:
        return np.array(sorted(greedy), dtype=np.int64), False
    return np.array(best[1], dtype=np.int64), True


def _smea_kernel(stack: Stack, f: int, budget: int) -> Array:
    stack, f = drop_nonfinite(stack, f)
    chosen, exact = smea_subset(stack.gram(), f, budget)
    if not exact:
        warnings.warn(f"smea: exact search exceeded {budget} nodes (n={stack.n}, f={f}); using "
                      "the greedy subset instead of the exact one", ApproximationWarning,
                      stacklevel=4)
    return stack.subset_average(chosen)


def smea(inputs: Any, f: int, *, budget: int = SMEA_NODE_BUDGET, weights: Any = None,
         deterministic: bool = False) -> Array:
    """Smallest maximum eigenvalue averaging (Allouah et al. 2023), exact by enumeration for
    small C(n, f) and by branch and bound otherwise. Needs n > 2f. ``weights``: average the
    chosen subset by these weights (e.g. example counts).
    """
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "smea", n, f, "n > 2f")
    return run_rule(_smea_kernel, inputs, deterministic=deterministic, weights=weights, f=f,
                    budget=budget)


MDA = rule_class("mda", mda, "Minimum-diameter averaging", class_name="MDA",
                 call_kwargs=("weights",), supports_weights=True)
SMEA = rule_class("smea", smea, "Smallest maximum eigenvalue averaging", class_name="SMEA",
                  call_kwargs=("weights",), supports_weights=True)
