"""Clipping: centered clipping (aggregator), static clipping and ARC (pre-aggregators).

- Centered clipping: Karimireddy, He & Jaggi 2021, "Learning from History for Byzantine Robust
  Optimization". ``v <- v + (1/n) sum_i clip_tau(x_i - v)``, L iterations, started at a center.
  The paper's center is the previous aggregate (momentum); without history we start at the
  coordinate-wise median, as BTARD does (Gorbunov et al. 2022, "Secure Distributed Training at
  Scale"). Default ``tau``: the median distance of the workers to the start center (a
  scale-free convenience default, not from the paper; pass ``tau`` to fix it).
- Static clipping: every vector scaled to norm at most C.
- ARC, adaptive robust clipping: Allouah et al. 2024, "Boosting Robustness by Clipping
  Gradients in Distributed Learning": clip every vector to the (k+1)-th largest norm with
  k = floor(2 (f/n) (n - f)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from verde.robust._core import (
    Array,
    Stack,
    check_f,
    drop_nonfinite,
    require,
    row_sq_norms,
    to_numpy,
)
from verde.robust.base import (
    Aggregator,
    PreAggregator,
    register_aggregator,
    rule_class,
    run_pre,
    run_rule,
)
from verde.robust.coordinate import _count, _median_kernel


def _row_norms_of(diff: Array) -> np.ndarray:
    if isinstance(diff, torch.Tensor):
        return to_numpy(torch.linalg.vector_norm(diff, dim=1)).astype(np.float64)
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def _cc_kernel(stack: Stack, f: int, tau: float | None, iterations: int,
               center: Array | None) -> Array:
    stack, _ = drop_nonfinite(stack, f)
    x = stack.work()
    if center is None:
        v = stack.from_numpy(to_numpy(_median_kernel(stack)))
    else:
        v = stack.from_numpy(to_numpy(center).reshape(-1))
        if v.shape[0] != stack.d:
            raise ValueError(f"centered_clipping: center has {v.shape[0]} coordinates, the "
                             f"worker vectors have {stack.d}")
    radius = tau
    for _ in range(iterations):
        diff = x - v[None, :]
        norms = _row_norms_of(diff)
        if radius is None:
            radius = float(np.median(norms))
        scale = np.minimum(1.0, radius / np.maximum(norms, 1e-300)) / stack.n
        v = v + stack.from_numpy(scale) @ diff
    return v


def centered_clipping(inputs: Any, f: int = 0, *, tau: float | None = None,
                      iterations: int = 3, center: Any | None = None,
                      deterministic: bool = False) -> Array:
    """Centered clipping (Karimireddy et al. 2021). Needs n > 2f.

    ``center``: start point (an array/tensor of one worker vector's shape; the previous
    aggregate in the paper); ``None`` starts at the coordinate-wise median. ``tau``: clipping
    radius; ``None`` uses the median distance to the start center.
    """
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "centered_clipping", n, f, "n > 2f")
    if tau is not None and not tau > 0:
        raise ValueError(f"centered_clipping: tau must be > 0, got {tau}")
    if iterations < 1:
        raise ValueError(f"centered_clipping: iterations must be >= 1, got {iterations}")
    return run_rule(_cc_kernel, inputs, deterministic=deterministic, f=f, tau=tau,
                    iterations=iterations, center=center)


@register_aggregator
class CenteredClipping(Aggregator):
    """Centered clipping; with ``momentum_center=True`` each call starts at the previous output
    (the paper's momentum center), the first call at the coordinate-wise median.
    """

    name = "centered_clipping"

    def __init__(self, f: int = 0, *, tau: float | None = None, iterations: int = 3,
                 momentum_center: bool = True, deterministic: bool = False) -> None:
        super().__init__(f, deterministic=deterministic)
        self.tau, self.iterations, self.momentum_center = tau, iterations, momentum_center
        self._previous: Any | None = None

    def aggregate(self, inputs: Any, **kwargs: Any) -> Array:
        center = self._previous if self.momentum_center else None
        out = centered_clipping(inputs, self.f, tau=self.tau, iterations=self.iterations,
                                center=center, deterministic=self.deterministic)
        if self.momentum_center:
            self._previous = out.clone() if isinstance(out, torch.Tensor) else out.copy()
        return out

    def reset(self) -> None:
        self._previous = None


def _clip_rows(stack: Stack, radius: np.ndarray | float) -> Array:
    """Every row scaled to norm <= radius, in the native dtype; non-finite rows become 0."""
    norms = np.sqrt(row_sq_norms(stack))
    bad = ~np.isfinite(norms)  # exactly the non-finite rows (see row_sq_norms)
    scale = np.minimum(1.0, np.asarray(radius) / np.maximum(norms, 1e-300))
    scale[bad] = 0.0  # a non-finite vector has no direction; it is zeroed
    x = stack.native()
    with np.errstate(invalid="ignore", over="ignore"):
        out = stack.from_numpy(scale, like=x)[:, None] * x
    if bad.any():
        out[stack.index(np.flatnonzero(bad))] = 0.0
    return out


def static_clip(inputs: Any, threshold: float, *, deterministic: bool = False) -> Array:
    """Scale every worker vector to norm at most ``threshold`` (non-finite vectors become 0)."""
    if not threshold > 0:
        raise ValueError(f"static_clip: threshold must be > 0, got {threshold}")
    return run_pre(lambda s: _clip_rows(s, float(threshold)), inputs,
                   deterministic=deterministic)


def arc_threshold(norms: np.ndarray, f: int) -> float:
    """ARC's radius: the (k+1)-th largest norm, k = floor(2 (f/n) (n - f)) (Allouah et al. 2024)."""
    n = norms.shape[0]
    k = math.floor(2.0 * f / n * (n - f))
    k = min(k, n - 1)
    return float(np.sort(norms)[::-1][k])


def _arc_kernel(stack: Stack, f: int) -> Array:
    norms = np.sqrt(row_sq_norms(stack))
    return _clip_rows(stack, arc_threshold(norms, f))


def arc(inputs: Any, f: int, *, deterministic: bool = False) -> Array:
    """ARC, adaptive robust clipping (Allouah et al. 2024). Needs n > 2f."""
    f = check_f(f)
    n = _count(inputs)
    require(n > 2 * f, "arc", n, f, "n > 2f")
    return run_pre(_arc_kernel, inputs, deterministic=deterministic, f=f)


StaticClipping = rule_class("clipping", static_clip, "Static clipping to norm ``threshold``",
                            base=PreAggregator, class_name="StaticClipping",
                            defaults={"threshold": 1.0})
ARC = rule_class("arc", arc, "Adaptive robust clipping", base=PreAggregator, class_name="ARC")
