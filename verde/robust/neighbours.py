"""Nearest-neighbour rules: NNM (pre-aggregator) and MoNNA (aggregator).

- NNM, nearest-neighbour mixing: Allouah, Farhadkhani, Guerraoui, Gupta, Pinot & Stephan 2023,
  "Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity". Each vector is
  replaced by the average of its n-f nearest neighbours (itself included), which shrinks the
  honest spread before any aggregator runs.
- MoNNA: Farhadkhani, Guerraoui, Gupta, Hoang, Pinot & Stephan 2023, "Robust Collaborative
  Learning with Linear Gradient Overhead" (ICML). Workers use local Polyak momentum (the
  harness does this on the worker side) and a trusted reference aggregates by averaging the
  n-f vectors nearest to its own.

Both read one Gram matrix (float64) for all distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from verde.robust._core import Array, Stack, check_f, pairwise_sq_distances, require, to_numpy
from verde.robust.base import PreAggregator, rule_class, run_pre, run_rule
from verde.robust.coordinate import _count


def nearest_indices(dist: np.ndarray, i: int, k: int) -> np.ndarray:
    """The k workers nearest to worker i, itself first; ties go to lower indices."""
    row = dist[i].copy()
    row[i] = -1.0
    return np.argsort(row, kind="stable")[:k]


def nnm_weights(dist: np.ndarray, f: int) -> np.ndarray:
    """Mixing matrix W with row i = uniform weights on the n-f nearest neighbours of i."""
    n = dist.shape[0]
    k = n - f
    d = dist.copy()
    np.fill_diagonal(d, -1.0)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    w = np.zeros((n, n))
    np.put_along_axis(w, idx, 1.0 / k, axis=1)
    return w


def _nnm_kernel(stack: Stack, f: int) -> Array:
    return stack.mix(nnm_weights(pairwise_sq_distances(stack), f))


def nnm(inputs: Any, f: int, *, deterministic: bool = False) -> Array:
    """Nearest-neighbour mixing (Allouah et al. 2023). Returns a stack of n mixed vectors, same
    type and dtype as the input. Needs n > 2f.
    """
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "nnm", n, f, "n > 2f")
    return run_pre(_nnm_kernel, inputs, deterministic=deterministic, f=f)


def _monna_kernel(stack: Stack, f: int, reference: int) -> Array:
    # Only the distances to the reference are needed: n*d work, not a full Gram matrix.
    x = stack.native()  # a difference then a norm: no cancellation, input precision is enough
    diff = x - x[reference][None, :]
    if stack.is_torch:
        dist = to_numpy(torch.linalg.vector_norm(diff, dim=1)).astype(np.float64)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    dist[~stack.finite_rows()] = np.inf
    dist = np.where(np.isnan(dist), np.inf, dist)
    dist[reference] = -1.0
    return stack.subset_average(np.argsort(dist, kind="stable")[: stack.n - f])


def monna(inputs: Any, f: int, *, reference: int = 0, weights: Any = None,
          deterministic: bool = False) -> Array:
    """MoNNA (Farhadkhani et al. 2023): average of the n-f vectors nearest to the trusted
    worker ``reference`` (itself included). Needs n > 2f. ``weights``: average those n-f
    vectors by these weights (e.g. example counts).
    """
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "monna", n, f, "n > 2f")
    if not 0 <= reference < n:
        raise ValueError(f"monna: reference must index a worker in [0, {n}), got {reference}")
    return run_rule(_monna_kernel, inputs, deterministic=deterministic, weights=weights, f=f,
                    reference=reference)


NNM = rule_class("nnm", nnm, "Nearest-neighbour mixing", base=PreAggregator,
                 class_name="NNM")
MoNNA = rule_class("monna", monna, "MoNNA (the harness places an honest worker at "
                   "``reference``)", class_name="MoNNA", call_kwargs=("weights",),
                   supports_weights=True)
