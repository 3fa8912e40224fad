"""Geometric median by the smoothed Weiszfeld algorithm.

Pillutla, Kakade & Harchaoui 2019/2022, "Robust Aggregation for Federated Learning" (RFA): the
geometric median ``argmin_z sum_i ||z - x_i||`` computed by Weiszfeld iterations whose weights
``1 / max(nu, ||z - x_i||)`` are smoothed by ``nu`` so that an iterate landing on a worker
vector does not divide by zero.

Every iterate is a convex combination of the worker vectors, so the iteration runs entirely on
the ``n x n`` Gram matrix (``||x_i - z||^2 = G_ii - 2 (G a)_i + a^T G a`` for ``z = a^T X``);
only the final combination touches all d coordinates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from verde.robust._core import Array, Stack, check_f, drop_nonfinite, require
from verde.robust.base import rule_class, run_rule
from verde.robust.coordinate import _count


def weiszfeld_coefficients(g: np.ndarray, nu: float, tol: float, max_iter: int) -> np.ndarray:
    """Convex coefficients ``a`` with ``z = a^T X`` the smoothed geometric median (Gram form)."""
    n = g.shape[0]
    a = np.full(n, 1.0 / n)
    diag = np.diag(g)
    for _ in range(max_iter):
        ga = g @ a
        zz = float(a @ ga)
        dist = np.sqrt(np.maximum(diag - 2.0 * ga + zz, 0.0))
        beta = 1.0 / np.maximum(dist, nu)
        new = beta / beta.sum()
        step = new - a
        a = new
        if float(step @ g @ step) <= (tol * tol) * max(1.0, zz):
            break
    return a


def _gm_kernel(stack: Stack, f: int, nu: float, tol: float, max_iter: int) -> Array:
    stack, _ = drop_nonfinite(stack, f)
    return stack.combine(weiszfeld_coefficients(stack.gram(), nu, tol, max_iter))


def geometric_median(inputs: Any, f: int = 0, *, nu: float = 1e-6, tol: float = 1e-7,
                     max_iter: int = 200, deterministic: bool = False) -> Array:
    """Smoothed-Weiszfeld geometric median (Pillutla et al. 2019, RFA). Needs n > 2f.

    ``nu`` smooths the weights, ``tol`` stops when a step moves the estimate by less than
    ``tol * max(1, ||z||)``, ``max_iter`` caps the iterations. Rows with non-finite entries are
    discarded first (they count against f).
    """
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "geometric_median", n, f, "n > 2f")
    if nu <= 0 or tol <= 0 or max_iter < 1:
        raise ValueError(f"geometric_median: need nu > 0, tol > 0, max_iter >= 1; got nu={nu}, "
                         f"tol={tol}, max_iter={max_iter}")
    return run_rule(_gm_kernel, inputs, deterministic=deterministic, f=f, nu=nu, tol=tol,
                    max_iter=max_iter)


GeometricMedian = rule_class("geometric_median", geometric_median,
                             "Smoothed-Weiszfeld geometric median")
