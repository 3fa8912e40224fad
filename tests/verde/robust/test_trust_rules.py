"""FLTrust and SignGuard on hand-computable inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import verde.robust as R
from verde.robust.signguard import largest_mean_shift_cluster


@pytest.mark.parametrize("backend", [np.asarray, torch.tensor])
def test_fltrust_by_hand(backend):
    g0 = np.array([1.0, 0.0])
    x = np.array([[2.0, 0.0],    # cos 1, rescaled to [1, 0]
                  [0.0, 5.0],    # cos 0 -> no trust
                  [-3.0, 0.0],   # cos -1 -> ReLU 0
                  [1.0, 1.0]])   # cos 1/sqrt2, rescaled to [1, 1]/sqrt2
    c = 1 / np.sqrt(2)
    expect = (1.0 * np.array([1.0, 0.0]) + c * np.array([c, c])) / (1 + c)
    out = R.fltrust(backend(x), backend(g0))
    np.testing.assert_allclose(np.asarray(out), expect, rtol=1e-12)


def test_fltrust_no_trust_gives_zero_and_needs_a_reference():
    x = np.array([[-1.0, 0.0], [-2.0, 0.0]])
    np.testing.assert_array_equal(R.fltrust(x, np.array([1.0, 0.0])), [0.0, 0.0])
    with pytest.raises(ValueError, match="reference"):
        R.FLTrust()(x)
    with pytest.raises(ValueError, match="coordinates"):
        R.fltrust(x, np.zeros(3))


def test_mean_shift_finds_the_majority_cluster():
    feats = np.array([[0.5, 0.0, 0.5]] * 6 + [[0.9, 0.0, 0.1]] * 3) + 1e-3 * np.arange(9)[:, None]
    np.testing.assert_array_equal(largest_mean_shift_cluster(feats), [True] * 6 + [False] * 3)


def test_signguard_filters_norm_and_sign_outliers():
    rng = np.random.default_rng(0)
    honest = rng.normal(size=(9, 400)) * 0.1 + 0.02
    big = 50 * honest[:1]                      # norm outlier
    flipped = np.tile(np.abs(honest[0]), (2, 1))  # all-positive signs: sign outlier
    x = np.vstack([honest, big, flipped])
    out = R.signguard(x, 3, fraction=1.0)
    med = np.median(np.linalg.norm(x, axis=1))
    kept = honest * np.minimum(1, med / np.linalg.norm(honest, axis=1))[:, None]
    np.testing.assert_allclose(out, kept.sum(axis=0) / 9, rtol=1e-9)


def test_signguard_bad_parameters():
    with pytest.raises(ValueError, match="lower"):
        R.signguard(np.zeros((5, 3)), 1, lower=2.0)
