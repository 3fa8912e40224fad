"""CAF, DnC and the Flag Aggregator: exact answers where the outliers are unambiguous."""

from __future__ import annotations

import numpy as np
import pytest

import verde.robust as R


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    honest = 1.0 + 0.05 * rng.normal(size=(8, 30))
    byz = np.tile(-20.0 * honest.mean(axis=0), (3, 1))
    return honest, np.vstack([honest, byz])


def test_dnc_removes_exactly_the_outliers():
    honest, x = _data()
    np.testing.assert_allclose(R.dnc(x, 3, sub_dim=10), honest.mean(axis=0), rtol=1e-12)


def test_dnc_f0_keeps_everyone():
    _, x = _data()
    np.testing.assert_allclose(R.dnc(x, 0), x.mean(axis=0), rtol=1e-12)


def test_caf_down_weights_outliers_to_zero():
    honest, x = _data()
    out = R.caf(x, 3)
    assert np.linalg.norm(out - honest.mean(axis=0)) < 0.05 * np.linalg.norm(honest.mean(axis=0))
    # Without outliers at all CAF returns (close to) the mean
    np.testing.assert_allclose(R.caf(honest, 3), honest.mean(axis=0), atol=0.05)


def test_flag_on_collinear_vectors_is_their_mean():
    u = np.array([1.0, 2.0, -2.0]) / 3
    x = np.outer([1.0, 2.0, 3.0, 4.0, 5.0], u)
    np.testing.assert_allclose(R.flag_aggregator(x, 1, p=1), x.mean(axis=0), rtol=1e-9)


def test_flag_projects_out_directions_off_the_subspace():
    honest, x = _data()
    # A Byzantine direction orthogonal to the honest mean is removed by the projection
    rng = np.random.default_rng(1)
    v = rng.normal(size=30)
    m = honest.mean(axis=0)
    v -= v @ m / (m @ m) * m
    x = np.vstack([honest, np.tile(5 * v, (3, 1))])
    out = R.flag_aggregator(x, 3, p=1)
    v_hat = v / np.linalg.norm(v)
    assert abs(x.mean(axis=0) @ v_hat) > 5.0  # the plain mean is pulled along v ...
    assert abs(out @ v_hat) < 0.01 * np.linalg.norm(out)  # ... the flag projection is not
    assert np.linalg.norm(out - m) < 0.1 * np.linalg.norm(m)


@pytest.mark.parametrize("rule", [R.caf, R.dnc, R.flag_aggregator])
def test_breakdown_raises(rule):
    with pytest.raises(R.BreakdownConditionError, match="n > 2f"):
        rule(np.zeros((6, 3)), 3)


def test_bad_parameters():
    with pytest.raises(ValueError, match="iterations"):
        R.dnc(np.zeros((5, 3)), 1, iterations=0)
    with pytest.raises(ValueError, match="subspace dimension"):
        R.flag_aggregator(np.zeros((5, 3)), 1, p=0)
