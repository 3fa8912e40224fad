"""Shared pieces for the verde.robust tests: every rule as a uniform callable, clustered data."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import verde.robust as R


def aggregate_by_name(name: str, x: Any, f: int) -> Any:
    """Run a fresh instance of a registered aggregator (FLTrust gets the mean as reference)."""
    rule = R.make_aggregator(name, f=f)
    if rule.needs_reference:
        ref = x.mean(dim=0) if isinstance(x, torch.Tensor) else np.mean(x, axis=0)
        return rule(x, reference=ref)
    return rule(x)


def clustered(n: int, f: int, d: int, seed: int = 0, spread: float = 0.1) -> np.ndarray:
    """n-f honest vectors around a common point, f outliers far away (float64)."""
    rng = np.random.default_rng(seed)
    center = rng.normal(size=d) + 2.0
    x = center + spread * rng.normal(size=(n, d))
    x[n - f:] = center + 10.0 + rng.normal(size=(f, d))
    return x


def digest(a: Any) -> str:
    """Hash of the bytes, dtype and shape of an array/tensor/list of them."""
    h = hashlib.sha256()
    items = a if isinstance(a, list | tuple) else [a]
    for v in items:
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu()
            arr = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
        else:
            arr = np.asarray(v)
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


@pytest.fixture
def run_aggregator() -> Callable[[str, Any, int], Any]:
    return aggregate_by_name


@pytest.fixture
def make_clustered() -> Callable[..., np.ndarray]:
    return clustered


@pytest.fixture
def hash_of() -> Callable[[Any], str]:
    return digest
