"""deterministic=True: runs under repops.reproducible() when repops has it, else says why not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import repops
import verde.robust as R

HAS_MODE = hasattr(repops, "reproducible")
X = np.random.default_rng(0).normal(size=(11, 16))


def test_deterministic_mode_unavailable_is_a_clear_error(monkeypatch):
    if HAS_MODE:  # simulate an older repops without the mode
        monkeypatch.delattr(repops, "reproducible")
    with pytest.raises(R.DeterministicModeUnavailableError, match=r"repops\.reproducible"):
        R.median(X, 2, deterministic=True)
    with pytest.raises(NotImplementedError):
        R.Krum(2, deterministic=True)(X)


def test_default_mode_does_not_need_repops():
    assert R.median(X, 2).shape == (16,)


@pytest.mark.skipif(not HAS_MODE, reason="repops.reproducible() not available yet")
@pytest.mark.parametrize("name", sorted(R.AGGREGATORS))
def test_deterministic_mode_is_repeatable_and_close(name):
    kw = {"reference": X.mean(axis=0)} if R.AGGREGATORS[name].needs_reference else {}
    a = R.make_aggregator(name, f=2, deterministic=True)(torch.tensor(X), **kw)
    b = R.make_aggregator(name, f=2, deterministic=True)(torch.tensor(X), **kw)
    assert a.dtype == torch.float64  # the caller's dtype comes back
    assert torch.equal(a, b)
    np.testing.assert_allclose(a.numpy(), R.make_aggregator(name, f=2)(X, **kw), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.skipif(not HAS_MODE, reason="repops.reproducible() not available yet")
@pytest.mark.parametrize("name", sorted(R.PRE_AGGREGATORS))
def test_deterministic_pre_aggregators(name):
    a = R.make_pre_aggregator(name, f=2, deterministic=True)(X)
    assert isinstance(a, np.ndarray) and a.dtype == np.float64
    np.testing.assert_allclose(a, R.make_pre_aggregator(name, f=2)(X), rtol=1e-4, atol=1e-5)
