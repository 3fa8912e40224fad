"""Coordinate-wise rules on hand-computable inputs, NaN/inf handling, and no size cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import verde.robust as R

COLS = np.array([[1.0, 50.0], [2.0, -3.0], [3.0, 7.0], [4.0, 7.5], [100.0, 6.0]])


@pytest.mark.parametrize("backend", [np.asarray, torch.tensor])
def test_median_trimmed_meamed_exact(backend):
    x = backend(COLS)
    np.testing.assert_array_equal(np.asarray(R.median(x, 2)), [3.0, 7.0])
    np.testing.assert_array_equal(np.asarray(R.median(x[:4])), [2.5, 7.25])
    # trimmed mean, f=1: drop min and max of each column
    np.testing.assert_allclose(np.asarray(R.trimmed_mean(x, 1)), [3.0, (6.0 + 7.0 + 7.5) / 3])
    np.testing.assert_allclose(np.asarray(R.trimmed_mean(x, 0)), COLS.mean(axis=0))
    # MeaMed: the n-f values closest to the median (3 | 7)
    np.testing.assert_allclose(np.asarray(R.meamed(x, 2)), [3.0, (6.0 + 7.0 + 7.5) / 3])
    np.testing.assert_allclose(np.asarray(R.meamed(x, 1)), [2.5, (-3 + 6 + 7 + 7.5) / 4])
    np.testing.assert_allclose(np.asarray(R.mean(x)), COLS.mean(axis=0))


def test_meamed_matches_argsort_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 300))
    med = np.median(x, axis=0)
    idx = np.argsort(np.abs(x - med), axis=0, kind="stable")[:6]
    expect = np.take_along_axis(x, idx, axis=0).mean(axis=0)
    np.testing.assert_allclose(R.meamed(x, 3), expect, rtol=1e-12)


@pytest.mark.parametrize("rule", [R.median, R.trimmed_mean, R.meamed])
@pytest.mark.parametrize("n,f", [(4, 2), (5, 3), (2, 1)])
def test_breakdown_raises(rule, n, f):
    with pytest.raises(R.BreakdownConditionError, match=r"n > 2f"):
        rule(np.zeros((n, 3)), f)


@pytest.mark.parametrize("rule", [R.median, R.trimmed_mean, R.meamed])
def test_allowed_at_the_boundary(rule):
    assert rule(np.zeros((5, 3)), 2).shape == (3,)


@pytest.mark.parametrize("backend", [np.asarray, torch.tensor])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_f_nonfinite_values_are_trimmed(backend, bad):
    x = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])
    x[[0, 4]] = bad
    for rule in (R.median, R.trimmed_mean):
        out = np.asarray(rule(backend(x), 2))
        assert np.isfinite(out).all() and out[0] in (2.0, 3.0, 4.0)
    assert not np.isfinite(np.asarray(R.mean(backend(x))))[0]


def test_chunked_path_matches_numpy(monkeypatch):
    import verde.robust.coordinate as C

    monkeypatch.setattr(C, "COORDINATE_CHUNK", 7)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 50)).astype(np.float32)
    np.testing.assert_array_equal(R.median(x), np.median(x, axis=0).astype(np.float32))
    np.testing.assert_allclose(R.trimmed_mean(x, 2),
                               np.sort(x.astype(np.float64), axis=0)[2:6].mean(axis=0),
                               rtol=1e-6)
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(R.median(t).numpy(), np.median(x, axis=0).astype(np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_median_beyond_2_pow_24_coordinates(backend):
    d = (1 << 24) + 5  # torch.quantile refuses inputs this large; our median does not
    base = np.arange(d, dtype=np.float64) % 1000
    x = np.stack([base, base + 2, base + 1]).astype(np.float16)
    xin = torch.from_numpy(x) if backend == "torch" else x
    out = R.median(xin, 1)
    out = out.numpy() if backend == "torch" else out
    assert out.shape == (d,) and out.dtype == np.float16
    np.testing.assert_array_equal(out, x[2])
