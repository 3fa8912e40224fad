"""Bucketing (Karimireddy, He & Jaggi 2022, "Byzantine-Robust Learning on Heterogeneous
Datasets via Bucketing"): shuffle the workers, average consecutive buckets of size s, and hand
the ceil(n/s) bucket means to the aggregator. Averaging shrinks the honest spread under
heterogeneity; at most f buckets contain a faulty worker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from verde.robust._core import Array, Stack
from verde.robust.base import PreAggregator, register_pre_aggregator, run_pre


def bucketing(inputs: Any, s: int = 2, *, seed: int | np.random.Generator | None = 0,
              deterministic: bool = False) -> Array:
    """Bucket means of a seeded random permutation; returns a stack of ceil(n/s) vectors."""
    if isinstance(s, bool) or not isinstance(s, int) or s < 1:
        raise ValueError(f"bucketing: bucket size s must be an integer >= 1, got {s!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def kernel(stack: Stack) -> Array:
        # Each bucket mean reads its own rows only (a weight-matrix product would read every
        # row once per bucket). A bucket holding a non-finite row is non-finite, exactly.
        perm = rng.permutation(stack.n)
        x = stack.native()
        groups = [perm[b:b + s] for b in range(0, stack.n, s)]
        if stack.is_torch:
            out = torch.zeros((len(groups), stack.d), dtype=x.dtype, device=x.device)
        else:
            out = np.zeros((len(groups), stack.d), dtype=x.dtype)
        for b, members in enumerate(groups):
            for i in members:
                out[b] += x[int(i)]
            out[b] *= 1.0 / len(members)
        return out

    return run_pre(kernel, inputs, deterministic=deterministic)


@register_pre_aggregator
class Bucketing(PreAggregator):
    """Bucketing with a fresh permutation each call from a seeded generator."""

    name = "bucketing"
    keeps_workers = False  # ceil(n/s) bucket means come out, not one vector per worker

    def __init__(self, f: int = 0, *, s: int = 2, seed: int = 0,
                 deterministic: bool = False) -> None:
        super().__init__(f, deterministic=deterministic)
        self.s = s
        self._rng = np.random.default_rng(seed)

    def transform(self, inputs: Any) -> Array:
        return bucketing(inputs, self.s, seed=self._rng, deterministic=self.deterministic)
