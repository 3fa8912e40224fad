"""Line-searched ("optimal") ALIE and IPM: choose the attack's scale to do the most damage to
the defence actually in use.

After the "optimal" attacks of Allouah et al. 2023 (ByzFL): for a one-parameter family of
malicious vectors (ALIE: mu + z sigma, Baruch et al. 2019; IPM: -eps mu, Xie et al. 2019),
pick the parameter maximising ||aggregator(honest + f malicious) - mean(honest)||. The search
is a log-spaced grid followed by a golden-section refinement around the best grid point; the
aggregator is deep-copied before every probe so its state (momentum centres, RNGs) is not
advanced by the search.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from verde.robust._core import Array, as_stack, check_f, to_numpy
from verde.robust.attacks import Attack, _repeat, _stats, register_attack


def _damage(aggregator: Any, honest_stack: Any, byz: Array, mu: np.ndarray) -> float:
    probe = copy.deepcopy(aggregator)
    if isinstance(byz, torch.Tensor):
        full = torch.cat([honest_stack, byz.reshape(byz.shape[0], -1)])
    else:
        full = np.concatenate([honest_stack, byz.reshape(byz.shape[0], -1)])
    with np.errstate(all="ignore"):
        out = to_numpy(probe(full)).astype(np.float64).reshape(-1)
    val = float(np.linalg.norm(out - mu))
    return val if math.isfinite(val) else math.inf


def line_search(objective: Callable[[float], float], lo: float, hi: float,
                grid: int = 8, refine: int = 6) -> float:
    """Maximise ``objective`` over [lo, hi] (log scale): grid, then golden-section refinement."""
    xs = np.geomspace(lo, hi, grid)
    vals = [objective(float(x)) for x in xs]
    i = int(np.argmax(vals))
    a = math.log(xs[max(i - 1, 0)])
    b = math.log(xs[min(i + 1, grid - 1)])
    best_x, best_v = float(xs[i]), vals[i]
    phi = (math.sqrt(5) - 1) / 2
    c, d = b - phi * (b - a), a + phi * (b - a)
    fc, fd = objective(math.exp(c)), objective(math.exp(d))
    for _ in range(refine):
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - phi * (b - a)
            fc = objective(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + phi * (b - a)
            fd = objective(math.exp(d))
    for x, v in ((math.exp(c), fc), (math.exp(d), fd)):
        if v > best_v:
            best_x, best_v = x, v
    return best_x


class _Optimal(Attack):
    low: float = 0.1
    high: float = 100.0

    def vector(self, mu: Array, sd: Array, scale: float) -> Array:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, honest: Any, f: int, *, aggregator: Any | None = None) -> Array:
        f = check_f(f)
        s = as_stack(honest, "honest")
        if aggregator is None:
            raise ValueError(f"{self.name}: needs the defence in use (aggregator=...) to search "
                             "against")
        mu, sd = _stats(s)
        if not f:
            return _repeat(s, mu, 0)
        mu_np = to_numpy(mu).astype(np.float64)

        def objective(scale: float) -> float:
            byz = _repeat(s, self.vector(mu, sd, scale), f)
            return _damage(aggregator, s.data, byz, mu_np)

        best = line_search(objective, self.params.get("low", self.low),
                           self.params.get("high", self.high))
        self.last_scale = best
        return _repeat(s, self.vector(mu, sd, best), f)


@register_attack
class OptimalALIE(_Optimal):
    """ALIE with z line-searched against the defence: mu + z sigma, z in [0.1, 100]."""

    name = "optimal_alie"

    def vector(self, mu: Array, sd: Array, scale: float) -> Array:
        return mu + scale * sd


@register_attack
class OptimalIPM(_Optimal):
    """IPM with eps line-searched against the defence: -eps mu, eps in [0.1, 100]."""

    name = "optimal_ipm"

    def vector(self, mu: Array, sd: Array, scale: float) -> Array:
        return -scale * mu
