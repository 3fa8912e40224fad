"""Distance-ranking rules: Krum, Multi-Krum, Bulyan.

All three rank workers by squared distances taken from one Gram matrix (float64), so the
``n^2 d`` work is a single matrix product instead of ``n^2/2`` vector differences.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from verde.robust._core import Array, Stack, check_f, pairwise_sq_distances, require
from verde.robust.base import rule_class, run_rule
from verde.robust.coordinate import _count, coordinatewise, meamed_sorted


def krum_scores(dist: np.ndarray, f: int) -> np.ndarray:
    """Krum score of each worker: the sum of squared distances to its n-f-2 nearest others.

    Blanchard et al. 2017. With fewer others than that (inside Bulyan's last selections) the
    score uses all others, and a lone worker scores 0.
    """
    n = dist.shape[0]
    k = min(max(n - f - 2, 1), n - 1)
    if k <= 0:
        return np.zeros(n)
    d = dist.copy()
    np.fill_diagonal(d, np.inf)
    part = np.partition(d, k - 1, axis=1)[:, :k]
    with np.errstate(invalid="ignore"):
        return part.sum(axis=1)


def _krum_kernel(stack: Stack, f: int) -> Array:
    scores = krum_scores(pairwise_sq_distances(stack), f)
    w = np.zeros(stack.n)
    w[int(np.argmin(scores))] = 1.0
    return stack.combine(w)


def krum(inputs: Any, f: int, *, deterministic: bool = False) -> Array:
    """Krum (Blanchard, El Mhamdi, Guerraoui & Stainer 2017, "Machine Learning with Adversaries:
    Byzantine Tolerant Gradient Descent"): the worker vector with the smallest sum of squared
    distances to its n-f-2 nearest neighbours. Needs n >= 2f+3. Ties go to the lowest index.
    """
    f = check_f(f)
    n = _count(inputs)
    require(n >= 2 * f + 3, "krum", n, f, "n >= 2f+3")
    return run_rule(_krum_kernel, inputs, deterministic=deterministic, f=f)


def _multi_krum_kernel(stack: Stack, f: int, m: int) -> Array:
    scores = krum_scores(pairwise_sq_distances(stack), f)
    return stack.subset_average(np.argsort(scores, kind="stable")[:m])


def multi_krum(inputs: Any, f: int, m: int | None = None, *, weights: Any = None,
               deterministic: bool = False) -> Array:
    """Multi-Krum (Blanchard et al. 2017; El Mhamdi et al. 2018): the average of the ``m``
    workers with the lowest Krum scores (default m = n - f). Needs n >= 2f+3 and 1 <= m <= n.
    ``weights``: average the chosen workers by these weights (e.g. example counts).
    """
    f = check_f(f)
    n = _count(inputs)
    require(n >= 2 * f + 3, "multi_krum", n, f, "n >= 2f+3")
    m = n - f if m is None else m
    if not 1 <= m <= n:
        raise ValueError(f"multi_krum: m must be in [1, n={n}], got {m}")
    return run_rule(_multi_krum_kernel, inputs, deterministic=deterministic, weights=weights,
                    f=f, m=m)


def bulyan_selection(dist: np.ndarray, f: int) -> np.ndarray:
    """Indices of the theta = n-2f workers Bulyan selects by repeated Krum on the remainder."""
    n = dist.shape[0]
    remaining = list(range(n))
    chosen: list[int] = []
    for _ in range(n - 2 * f):
        sub = dist[np.ix_(remaining, remaining)]
        pick = int(np.argmin(krum_scores(sub, f)))
        chosen.append(remaining.pop(pick))
    return np.array(chosen, dtype=np.int64)


def _bulyan_kernel(stack: Stack, f: int) -> Array:
    chosen = bulyan_selection(pairwise_sq_distances(stack), f)
    sub = stack.rows(np.sort(chosen))
    theta = sub.n
    beta = theta - 2 * f
    return coordinatewise(sub, lambda s, n: meamed_sorted(s, n, beta))


def bulyan(inputs: Any, f: int, *, deterministic: bool = False) -> Array:
    """Bulyan (El Mhamdi, Guerraoui & Rouault 2018, "The Hidden Vulnerability of Distributed
    Learning in Byzantium"): select theta = n-2f workers by Krum repeatedly, then per coordinate
    average the beta = theta-2f selected values closest to the median. Needs n >= 4f+3.
    """
    f = check_f(f)
    n = _count(inputs)
    require(n >= 4 * f + 3, "bulyan", n, f, "n >= 4f+3")
    return run_rule(_bulyan_kernel, inputs, deterministic=deterministic, f=f)


Krum = rule_class("krum", krum, "Krum")
MultiKrum = rule_class("multi_krum", multi_krum, "Multi-Krum", call_kwargs=("weights",),
                       supports_weights=True)
Bulyan = rule_class("bulyan", bulyan, "Bulyan")
