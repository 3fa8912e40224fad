"""Krum, Multi-Krum, Bulyan: hand-computed answers and their n, f conditions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import verde.robust as R
from verde.robust.krum import krum_scores

# 1-D points: four close together, one far; n=5, f=1 -> each worker sums n-f-2 = 2 neighbours
PTS = np.array([[0.0], [1.0], [2.0], [3.0], [40.0]])


def test_krum_scores_by_hand():
    d = (PTS - PTS.T) ** 2
    # 2 nearest: 0:{1,2}->1+4; 1:{0,2}->1+1; 2:{1,3}->2; 3:{2,1}->1+4; 4:{3,2}->37^2+38^2
    np.testing.assert_array_equal(krum_scores(d, 1), [5.0, 2.0, 2.0, 5.0, 37**2 + 38**2])


@pytest.mark.parametrize("backend", [np.asarray, torch.tensor])
def test_krum_multikrum_exact(backend):
    x = backend(PTS)
    np.testing.assert_array_equal(np.asarray(R.krum(x, 1)), [1.0])  # tie 1/2 -> lower index
    np.testing.assert_allclose(np.asarray(R.multi_krum(x, 1)), [1.5])  # m = n-f = 4: {1,2,0,3}
    np.testing.assert_allclose(np.asarray(R.multi_krum(x, 1, m=2)), [1.5])


def test_bulyan_exact():
    # n=7, f=1: theta = 5 chosen by repeated Krum, beta = 3 closest to the median per coordinate
    x = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0], [3.0, 13.0], [4.0, 14.0],
                  [5.0, 15.0], [100.0, -100.0]])
    np.testing.assert_allclose(R.bulyan(x, 1), [2.0, 12.0])


@pytest.mark.parametrize("rule,n,f", [(R.krum, 4, 1), (R.multi_krum, 6, 2), (R.krum, 2, 0),
                                      (R.bulyan, 6, 1), (R.bulyan, 10, 2)])
def test_breakdown_raises(rule, n, f):
    with pytest.raises(R.BreakdownConditionError, match=rule.__name__):
        rule(np.zeros((n, 2)), f)


@pytest.mark.parametrize("rule,n,f", [(R.krum, 5, 1), (R.multi_krum, 7, 2), (R.bulyan, 7, 1),
                                      (R.bulyan, 11, 2)])
def test_allowed_at_the_boundary(rule, n, f):
    assert rule(np.random.default_rng(0).normal(size=(n, 2)), f).shape == (2,)


def test_multikrum_m_out_of_range():
    with pytest.raises(ValueError, match="m must be"):
        R.multi_krum(np.zeros((5, 2)), 1, m=6)


def test_nonfinite_workers_never_chosen():
    x = np.vstack([PTS[:4], [[np.inf]]])
    assert np.isfinite(R.krum(x, 1)).all()
    x2 = np.vstack([PTS[:4], [[np.nan]]])
    np.testing.assert_allclose(R.multi_krum(x2, 1), [1.5])
