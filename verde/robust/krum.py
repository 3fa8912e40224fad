"""Distance-ranking rules: Krum, Multi-Krum, Bulyan.

All three rank workers by squared distances taken from one Gram matrix (float64), so the
``n^2 d`` work is a single matrix product instead of ``n^2/2`` vector differences.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from verde.robust._core import Array, Stack, check_f, pairwise_sq_distances, require
from verde.robust.base import Aggregator, register_aggregator, run_rule
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
    chosen = np.argsort(scores, kind="stable")[:m]
    w = np.zeros(stack.n)
    w[chosen] = 1.0 / m
    return stack.combine(w)


def multi_krum(inputs: Any, f: int, m: int | None = None, *,
               deterministic: bool = False) -> Array:
    """Multi-Krum (Blanchard et al. 2017; El Mhamdi et al. 2018): the average of the ``m``
    workers with the lowest Krum scores (default m = n - f). Needs n >= 2f+3 and 1 <= m <= n.
    """
    f = check_f(f)
    n = _count(inputs)
    require(n >= 2 * f + 3, "multi_krum", n, f, "n >= 2f+3")
    m = n - f if m is None else m
    if not 1 <= m <= n:
        raise ValueError(f"multi_krum: m must be in [1, n={n}], got {m}")
    return run_rule(_multi_krum_kernel, inputs, deterministic=deterministic, f=f, m=m)


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


@register_aggregator
class Krum(Aggregator):
    """Krum; see :func:`krum`."""

    name = "krum"

    def aggregate(self, inputs: Any, **kwargs: Any) -> Array:
        return krum(inputs, self.f, deterministic=self.deterministic)


@register_aggregator
class MultiKrum(Aggregator):
    """Multi-Krum; see :func:`multi_krum`."""

    name = "multi_krum"

    def __init__(self, f: int = 0, *, m: int | None = None, deterministic: bool = False) -> None:
        super().__init__(f, deterministic=deterministic)
        self.m = m

    def aggregate(self, inputs: Any, **kwargs: Any) -> Array:
        return multi_krum(inputs, self.f, self.m, deterministic=self.deterministic)


@register_aggregator
class Bulyan(Aggregator):
    """Bulyan; see :func:`bulyan`."""

    name = "bulyan"

    def aggregate(self, inputs: Any, **kwargs: Any) -> Array:
        return bulyan(inputs, self.f, deterministic=self.deterministic)
