"""Geometric median, centered clipping, static clipping and ARC on hand-computable inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import verde.robust as R
from verde.robust.clipping import arc_threshold


def test_geometric_median_of_a_square_plus_outlier_pull():
    square = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    np.testing.assert_allclose(R.geometric_median(square), [0.0, 0.0], atol=1e-9)
    # Collinear points: the geometric median is the (1-D) median, whatever the outlier
    line = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [1000.0, 0.0]])
    np.testing.assert_allclose(R.geometric_median(line, 2, tol=1e-12, max_iter=2000),
                               [2.0, 0.0], atol=1e-4)


def test_geometric_median_minimises_the_sum_of_distances():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 4))
    z = R.geometric_median(x, tol=1e-12, max_iter=5000)
    obj = lambda p: np.linalg.norm(x - p, axis=1).sum()  # noqa: E731
    for _ in range(20):
        assert obj(z) <= obj(z + 1e-3 * rng.normal(size=4)) + 1e-12


def test_geometric_median_bad_parameters():
    with pytest.raises(ValueError, match="nu > 0"):
        R.geometric_median(np.zeros((3, 2)), nu=0)
    with pytest.raises(R.BreakdownConditionError):
        R.geometric_median(np.zeros((4, 2)), 2)


def test_centered_clipping_infinite_radius_is_one_step_to_the_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5))
    center = rng.normal(size=5)
    out = R.centered_clipping(x, 2, tau=1e30, iterations=1, center=center)
    np.testing.assert_allclose(out, x.mean(axis=0), rtol=1e-12)


def test_centered_clipping_by_hand():
    # center 0, tau 1: (1/n) sum clip(x_i) = (1/3)([0.5] + [1] + [1]) for x = 0.5, 2, 10
    x = np.array([[0.5], [2.0], [10.0]])
    np.testing.assert_allclose(R.centered_clipping(x, 1, tau=1.0, iterations=1,
                                                   center=np.zeros(1)), [2.5 / 3])


def test_centered_clipping_momentum_center_changes_the_start():
    x = np.array([[0.5], [2.0], [10.0]])
    cc = R.CenteredClipping(1, tau=1.0, iterations=1)
    first = cc(x)  # starts at the median (2.0): 2 + (1/3)(-1 + 0 + 1) = 2
    np.testing.assert_allclose(first, [2.0])
    cc._previous = np.zeros(1)
    np.testing.assert_allclose(cc(x), [2.5 / 3])
    cc.reset()
    np.testing.assert_allclose(cc(x), [2.0])


def test_centered_clipping_center_shape_checked():
    with pytest.raises(ValueError, match="center has 3 coordinates"):
        R.centered_clipping(np.zeros((3, 2)), 1, center=np.zeros(3))


@pytest.mark.parametrize("backend", [np.asarray, torch.tensor])
def test_static_clipping_by_hand(backend):
    x = backend(np.array([[3.0, 4.0], [0.3, 0.4], [np.inf, 0.0]]))
    out = np.asarray(R.static_clip(x, 1.0))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]])


def test_arc_threshold_and_clipping_by_hand():
    # n=10, f=2: k = floor(2 * 0.2 * 8) = 3 -> clip to the 4th largest norm
    norms = np.arange(1.0, 11.0)
    assert arc_threshold(norms, 2) == 7.0
    x = np.diag(norms)  # row i has norm i+1
    out = R.arc(x, 2)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.minimum(norms, 7.0))
    assert arc_threshold(norms, 0) == 10.0  # f=0: nothing clipped


def test_clipping_bad_parameters():
    with pytest.raises(ValueError, match="threshold"):
        R.static_clip(np.zeros((3, 2)), 0.0)
    with pytest.raises(R.BreakdownConditionError):
        R.arc(np.zeros((4, 2)), 2)


def test_static_clipping_of_a_finite_row_whose_float32_norm_overflows():
    x = np.array([[3e30, 4e30], [0.3, 0.4]], dtype=np.float32)  # ||row 0||^2 overflows float32
    out = R.static_clip(x, 1.0)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.3, 0.4]], rtol=1e-6)
