"""Flag Aggregator: Almasi, Mehta, Vaidya & Ravi 2023, "Flag Aggregator: Scalable Distributed
Training under Failures and Augmented Losses using Convex Optimization".

Aggregation as maximum-likelihood subspace estimation: find the p-dimensional subspace Y that
best explains the *directions* of the worker vectors, down-weighting workers it explains badly,
by iteratively reweighted least squares. We implement the standard IRLS form of the flag-median
objective min_Y sum_i sqrt(1 - ||Y^T xhat_i||^2) (xhat_i = x_i/||x_i||), to which the paper's
Beta-density likelihood reduces for its default shape parameters: weights
w_i = 1/max(eps, sqrt(1 - r_i)) with r_i = ||Y^T xhat_i||^2, and Y = the top-p eigenvectors
of sum_i w_i xhat_i xhat_i^T. The output is the w-weighted mean projected onto Y (our reading
of the paper's "project the gradients onto the flag"; stated here because it is a choice).
Known weakness of this reading: f identical colluding vectors are explained exactly by the
subspace and so receive the largest IRLS weights (sign flipping breaks it in the harness);
compose it with NNM or clipping, or prefer another rule.

All of it runs on the n x n Gram matrix: the eigenvectors of sum_i w_i xhat_i xhat_i^T lie in
the span of the xhat_i.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from verde.robust._core import Array, Stack, check_f, drop_nonfinite, require
from verde.robust.base import rule_class, run_rule
from verde.robust.coordinate import _count


def flag_coefficients(g: np.ndarray, p: int, iterations: int, eps: float) -> np.ndarray:
    """Coefficients c with output = c^T X, from the Gram matrix G of the raw vectors."""
    n = g.shape[0]
    norms = np.sqrt(np.maximum(np.diag(g), 0.0))
    inv = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-300), 0.0)
    gh = g * inv[:, None] * inv[None, :]  # Gram of the unit vectors
    w = np.ones(n)
    p = min(p, n)
    u = lam = None
    for _ in range(iterations):
        s = np.sqrt(w)
        vals, vecs = np.linalg.eigh(s[:, None] * gh * s[None, :])
        lam, u = vals[-p:], vecs[:, -p:]
        pos = lam > 1e-10 * max(float(vals[-1]), 1e-300)
        lam, u = lam[pos], u[:, pos]
        proj = gh @ (s[:, None] * u)  # (n, p): <xhat_i, A^T u_k>
        r = np.clip((proj * proj / lam[None, :]).sum(axis=1), 0.0, 1.0)
        new = 1.0 / np.maximum(np.sqrt(1.0 - r), eps)
        if np.allclose(new, w, rtol=1e-6, atol=0):
            w = new
            break
        w = new
    s = np.sqrt(w)
    vals, vecs = np.linalg.eigh(s[:, None] * gh * s[None, :])
    lam, u = vals[-p:], vecs[:, -p:]
    pos = lam > 1e-10 * max(float(vals[-1]), 1e-300)
    lam, u = lam[pos], u[:, pos]
    a = w / w.sum()  # weighted mean m = a^T X
    am = s * ((inv[:, None] * g) @ a)  # A m, with A = W^(1/2) Xhat
    coef_hat = s * (u @ ((u.T @ am) / lam))  # Y Y^T m = Xhat^T coef_hat
    coef = coef_hat * inv
    # A projection never lengthens a vector; rounding in the Gram form can (tiny eigenvalues
    # in the denominator), so restore ||Y Y^T m|| <= ||m|| explicitly.
    out_sq, m_sq = float(coef @ g @ coef), float(a @ g @ a)
    if not np.isfinite(out_sq) or out_sq > m_sq * (1 + 1e-9):
        coef = coef * (np.sqrt(m_sq / out_sq) if np.isfinite(out_sq) and out_sq > 0 else 0.0)
    return coef


def _flag_kernel(stack: Stack, f: int, p: int | None, iterations: int, eps: float) -> Array:
    stack, f = drop_nonfinite(stack, f)
    dim = p if p is not None else max(1, (stack.n - 2 * f) // 4)
    return stack.combine(flag_coefficients(stack.gram(), dim, iterations, eps))


def flag_aggregator(inputs: Any, f: int = 0, *, p: int | None = None, iterations: int = 20,
                    eps: float = 1e-6, deterministic: bool = False) -> Array:
    """Flag Aggregator (Almasi et al. 2023), IRLS flag-median form. Needs n > 2f.

    ``p``: subspace dimension (default max(1, (n-2f)//4)); ``iterations``: IRLS rounds.
    """
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "flag_aggregator", n, f, "n > 2f")
    if p is not None and p < 1:
        raise ValueError(f"flag_aggregator: subspace dimension p must be >= 1, got {p}")
    return run_rule(_flag_kernel, inputs, deterministic=deterministic, f=f, p=p,
                    iterations=iterations, eps=eps)


FlagAggregator = rule_class("flag", flag_aggregator, "Flag Aggregator",
                            class_name="FlagAggregator")
