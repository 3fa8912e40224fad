"""Spectral filters: CAF and DnC. Both find the direction along which the workers spread most
and discard (or down-weight) the workers that stick out along it.

- CAF, covariance-bound agnostic filter: Gupta et al. 2024 (the filter of Diakonikolas et al.
  2017/2019 adapted to Byzantine aggregation, as implemented in ByzFL). We implement the
  standard iterative soft filter: weights c_i start at 1; while sum(c) > n - 2f, take the top
  eigenpair (lambda, v) of the c-weighted covariance, score tau_i = <x_i - mu_c, v>^2 and set
  c_i <- c_i (1 - tau_i / max_j tau_j); return the weighted mean mu_c with the smallest lambda.
- DnC, divide and conquer: Shejwalkar & Houmansadr 2021, "Manipulating the Byzantine:
  Optimizing Model Poisoning Attacks and Defenses for Federated Learning" (NDSS). Repeat on
  random coordinate subsets: centre, score each worker by its squared projection on the top
  singular vector, keep the n - c*f lowest scores; average the workers kept in every round.

Everything is computed on n x n (centred, weighted) Gram matrices: the top eigenvector of an
``n x d`` data matrix's covariance corresponds to the top eigenvector of its Gram matrix.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from verde.robust._core import Array, Stack, check_f, drop_nonfinite, require, to_numpy
from verde.robust.base import rule_class, run_rule
from verde.robust.coordinate import _count


def caf_weights(g: np.ndarray, f: int) -> np.ndarray:
    """Convex weights of the CAF output from the Gram matrix."""
    n = g.shape[0]
    c = np.ones(n)
    best_a, best_lam = np.full(n, 1.0 / n), np.inf
    lam0 = None
    for _ in range(4 * n + 8):
        if c.sum() <= 0:
            break
        a = c / c.sum()
        # centred Gram K = (I - 1 a^T) G (I - a 1^T)
        ga = g @ a
        k = g - ga[:, None] - ga[None, :] + float(a @ ga)
        s = np.sqrt(a)
        m = s[:, None] * k * s[None, :]
        vals, vecs = np.linalg.eigh(m)
        lam, u = float(vals[-1]), vecs[:, -1]
        if lam < best_lam:
            best_lam, best_a = lam, a
        lam0 = lam if lam0 is None else lam0
        # Stop once enough weight is removed, or the spread is rounding noise (duplicates).
        if c.sum() <= n - 2 * f or lam <= 1e-12 * lam0:
            break
        proj = k @ (s * u)
        tau = proj * proj / lam
        tmax = float(tau[c > 0].max())
        if tmax <= 0:
            break
        c = np.maximum(c * (1.0 - tau / tmax), 0.0)
    return best_a


def _caf_kernel(stack: Stack, f: int) -> Array:
    stack, f = drop_nonfinite(stack, f)
    return stack.combine(caf_weights(stack.gram(), f))


def caf(inputs: Any, f: int, *, deterministic: bool = False) -> Array:
    """CAF, covariance-bound agnostic filter (Gupta et al. 2024; standard filter form). n > 2f."""
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "caf", n, f, "n > 2f")
    return run_rule(_caf_kernel, inputs, deterministic=deterministic, f=f)


def _dnc_kernel(stack: Stack, f: int, *, iterations: int, sub_dim: int, c: float,
                seed: int) -> Array:
    stack, f = drop_nonfinite(stack, f)
    n, d = stack.n, stack.d
    rng = np.random.default_rng(seed)
    keep_count = max(n - math.ceil(c * f), 1)
    good = np.ones(n, dtype=bool)
    x = stack.work()
    for _ in range(iterations):
        cols = np.sort(rng.choice(d, size=min(sub_dim, d), replace=False))
        sub = x[:, stack.index(cols)]
        g = to_numpy(sub @ sub.T).astype(np.float64)
        r = g.mean(axis=1)
        k = g - r[:, None] - r[None, :] + r.mean()
        vals, vecs = np.linalg.eigh(k)
        scores = vals[-1] * vecs[:, -1] ** 2
        kept = np.zeros(n, dtype=bool)
        kept[np.argsort(scores, kind="stable")[:keep_count]] = True
        good &= kept
    if not good.any():
        good[:] = True
    return stack.subset_average(np.flatnonzero(good))


def dnc(inputs: Any, f: int, *, iterations: int = 5, sub_dim: int = 10_000, c: float = 1.0,
        seed: int = 0, weights: Any = None, deterministic: bool = False) -> Array:
    """DnC (Shejwalkar & Houmansadr 2021): spectral outlier removal on random coordinate
    subsets of size ``sub_dim``, ``iterations`` rounds, dropping ceil(c*f) each round. n > 2f.
    ``weights``: average the kept workers by these weights (e.g. example counts).
    """
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "dnc", n, f, "n > 2f")
    if iterations < 1 or sub_dim < 1 or c < 0:
        raise ValueError(f"dnc: need iterations >= 1, sub_dim >= 1, c >= 0; got {iterations}, "
                         f"{sub_dim}, {c}")
    return run_rule(_dnc_kernel, inputs, deterministic=deterministic, weights=weights, f=f,
                    iterations=iterations, sub_dim=sub_dim, c=c, seed=seed)


CAF = rule_class("caf", caf, "CAF", class_name="CAF")
DnC = rule_class("dnc", dnc, "DnC with a fresh seed each round from a seeded generator",
                 class_name="DnC", fresh_seed=True, call_kwargs=("weights",),
                 supports_weights=True)
