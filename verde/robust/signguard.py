"""SignGuard: Xu, Huang, Lai & Wang 2022, "Byzantine-robust Federated Learning through
Collaborative Malicious Gradient Filtering" (ICDCS).

Two filters, intersected: (1) a norm filter keeps workers with L <= ||x_i|| / median norm <= R;
(2) a sign filter clusters the workers by the fractions of positive, zero and negative signs
on a random subset of coordinates and keeps the largest cluster. Survivors are clipped to the
median norm and averaged. The paper clusters with MeanShift; we implement a flat-kernel mean
shift in the 3-D sign-statistic space with bandwidth = the median pairwise feature distance
(floored at 0.01), which is the standard form of that step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from verde.robust._core import (
    Array,
    Stack,
    check_f,
    drop_nonfinite,
    require,
    row_sq_norms,
    to_numpy,
)
from verde.robust.base import rule_class, run_rule
from verde.robust.coordinate import _count


def largest_mean_shift_cluster(features: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest cluster found by flat-kernel mean shift."""
    n = features.shape[0]
    diff = features[:, None, :] - features[None, :, :]
    dist = np.sqrt((diff * diff).sum(axis=2))
    bw = max(float(np.median(dist[np.triu_indices(n, 1)])) if n > 1 else 0.0, 0.01)
    modes = features.copy()
    for _ in range(100):
        dm = np.sqrt(((modes[:, None, :] - features[None, :, :]) ** 2).sum(axis=2))
        near = (dm <= bw).astype(np.float64)
        new = near @ features / near.sum(axis=1, keepdims=True)
        if np.allclose(new, modes, atol=1e-9):
            modes = new
            break
        modes = new
    labels = -np.ones(n, dtype=np.int64)
    centers: list[np.ndarray] = []
    for i in range(n):
        for c, ctr in enumerate(centers):
            if np.linalg.norm(modes[i] - ctr) <= bw / 2:
                labels[i] = c
                break
        else:
            centers.append(modes[i])
            labels[i] = len(centers) - 1
    counts = np.bincount(labels)
    return labels == int(np.argmax(counts))


def _sign_features(stack: Stack, cols: np.ndarray) -> np.ndarray:
    sub = stack.data[:, stack.index(cols)]
    k = float(cols.size)
    if stack.is_torch:
        pos = to_numpy((sub > 0).sum(dim=1)) / k
        neg = to_numpy((sub < 0).sum(dim=1)) / k
    else:
        pos = (sub > 0).sum(axis=1) / k
        neg = (sub < 0).sum(axis=1) / k
    return np.stack([pos, 1.0 - pos - neg, neg], axis=1).astype(np.float64)


def _signguard_kernel(stack: Stack, f: int, *, lower: float, upper: float, fraction: float,
                      seed: int) -> Array:
    stack, f = drop_nonfinite(stack, f)
    norms = np.sqrt(row_sq_norms(stack))
    med = float(np.median(norms))
    ratio = norms / med if med > 0 else np.ones_like(norms)
    keep_norm = (ratio >= lower) & (ratio <= upper)
    rng = np.random.default_rng(seed)
    k = max(1, round(fraction * stack.d))
    cols = np.sort(rng.choice(stack.d, size=k, replace=False))
    keep_sign = largest_mean_shift_cluster(_sign_features(stack, cols))
    keep = keep_norm & keep_sign
    if not keep.any():
        keep = keep_norm if keep_norm.any() else np.ones(stack.n, dtype=bool)
    scale = np.minimum(1.0, med / np.maximum(norms, 1e-300)) if med > 0 else np.ones(stack.n)
    w = np.where(keep, scale, 0.0) / keep.sum()
    return stack.combine(w)


def signguard(inputs: Any, f: int, *, lower: float = 0.1, upper: float = 3.0,
              fraction: float = 0.1, seed: int = 0, deterministic: bool = False) -> Array:
    """SignGuard (Xu et al. 2022): norm filter [lower, upper] x median norm, sign-statistics
    clustering on ``fraction`` of the coordinates (seeded), clip to the median norm, average.
    Needs n > 2f.
    """
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "signguard", n, f, "n > 2f")
    if not 0 < lower <= 1 <= upper or not 0 < fraction <= 1:
        raise ValueError(f"signguard: need 0 < lower <= 1 <= upper and 0 < fraction <= 1; got "
                         f"lower={lower}, upper={upper}, fraction={fraction}")
    return run_rule(_signguard_kernel, inputs, deterministic=deterministic, f=f, lower=lower,
                    upper=upper, fraction=fraction, seed=seed)


SignGuard = rule_class("signguard", signguard, "SignGuard with a fresh coordinate sample each "
                       "round", class_name="SignGuard", fresh_seed=True)
