"""NNM, MoNNA and bucketing on hand-computable inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import verde.robust as R

PTS = np.array([[0.0], [1.0], [3.0], [10.0], [11.0]])


@pytest.mark.parametrize("backend", [np.asarray, torch.tensor])
def test_nnm_by_hand(backend):
    # n=5, f=2: each point averages its 3 nearest (itself included)
    out = np.asarray(R.nnm(backend(PTS), 2))
    expect = [[(0 + 1 + 3) / 3], [(0 + 1 + 3) / 3], [(0 + 1 + 3) / 3], [(10 + 11 + 3) / 3],
              [(10 + 11 + 3) / 3]]
    np.testing.assert_allclose(out, expect)
    assert out.shape == PTS.shape


def test_nnm_f0_is_the_mean_everywhere():
    np.testing.assert_allclose(R.nnm(PTS, 0), np.full_like(PTS, PTS.mean()))


def test_nnm_nonfinite_rows_stay_out_of_honest_neighbourhoods():
    x = np.vstack([PTS[:3], [[np.inf]], [[np.nan]]])
    out = R.nnm(x, 2)
    np.testing.assert_allclose(out[:3], np.full((3, 1), 4.0 / 3))
    assert not np.isfinite(out[3:]).any()


def test_monna_by_hand():
    np.testing.assert_allclose(R.monna(PTS, 2), [4.0 / 3])
    np.testing.assert_allclose(R.monna(PTS, 2, reference=4), [24.0 / 3])
    with pytest.raises(ValueError, match="reference"):
        R.monna(PTS, 2, reference=5)


def test_bucketing_means_of_a_seeded_permutation():
    x = np.arange(7.0)[:, None]
    out = R.bucketing(x, 2, seed=3)
    perm = np.random.default_rng(3).permutation(7)
    expect = [x[perm[i:i + 2]].mean(axis=0) for i in range(0, 7, 2)]
    np.testing.assert_allclose(out, expect)
    assert out.shape == (4, 1)


def test_bucketing_bad_size():
    with pytest.raises(ValueError, match="bucket size"):
        R.bucketing(PTS, 0)


def test_compose_nnm_then_aggregator_differs_from_plain():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 4))
    rule = R.compose(R.NNM(2), R.Krum(2))
    np.testing.assert_allclose(rule(x), R.krum(R.nnm(x, 2), 2))
    assert not np.allclose(rule(x), R.krum(x, 2))
    with pytest.raises(ValueError, match="last stage"):
        R.compose(R.NNM(2))
    with pytest.raises(ValueError, match="not a PreAggregator"):
        R.compose(R.Krum(2), R.Krum(2))
