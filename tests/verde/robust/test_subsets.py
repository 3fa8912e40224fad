"""MDA and SMEA: exact against brute-force enumeration, canonical ties, fallback warnings."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import verde.robust as R
import verde.robust.subsets as S


def _brute_mda(x: np.ndarray, f: int) -> np.ndarray:
    g = x @ x.T
    sq = np.diag(g)
    d = np.maximum(sq[:, None] + sq[None, :] - 2 * g, 0)
    np.fill_diagonal(d, 0)
    best = min(itertools.combinations(range(len(x)), len(x) - f),
               key=lambda s: d[np.ix_(s, s)].max())  # min() keeps the first minimum
    return x[list(best)].mean(axis=0)


def _brute_smea(x: np.ndarray, f: int) -> np.ndarray:
    def top(s):
        sub = x[list(s)]
        c = sub - sub.mean(axis=0)
        return np.linalg.eigvalsh(c @ c.T)[-1]

    best = min(itertools.combinations(range(len(x)), len(x) - f), key=top)
    return x[list(best)].mean(axis=0)


@pytest.mark.parametrize("seed", range(12))
def test_mda_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 11))
    f = int(rng.integers(1, (n - 1) // 2 + 1))
    x = rng.normal(size=(n, 5))
    x[:f] += 2 * rng.normal(size=5)
    np.testing.assert_allclose(R.mda(x, f), _brute_mda(x, f), rtol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_mda_with_duplicate_rows_keeps_exactly_n_minus_f(seed):
    # After NNM many rows coincide; optimal subsets then leave room to spare, which must not
    # let the canonical pass keep more than n - f workers.
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(4, 3))
    x = base[rng.integers(0, 4, size=11)]
    d = np.maximum(np.diag(x @ x.T)[:, None] + np.diag(x @ x.T)[None, :] - 2 * x @ x.T, 0)
    sub, exact = S.mda_subset(d, 4)
    assert exact and sub.size == 7
    np.testing.assert_allclose(R.mda(x, 4), _brute_mda(x, 4), rtol=1e-12, atol=1e-12)


def test_mda_ties_go_to_the_first_subset_in_lexicographic_order():
    x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])  # every window of 3 has diameter 2
    np.testing.assert_array_equal(R.mda(x, 2), [1.0])
    np.testing.assert_array_equal(_brute_mda(x, 2), [1.0])


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("mode", ["enumerate", "branch_and_bound"])
def test_smea_equals_brute_force(seed, mode, monkeypatch):
    if mode == "branch_and_bound":
        monkeypatch.setattr(S, "SMEA_ENUMERATION_LIMIT", 0)
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(4, 11))
    f = int(rng.integers(1, (n - 1) // 2 + 1))
    x = rng.normal(size=(n, 6))
    x[:f] += rng.normal(size=6)
    np.testing.assert_allclose(R.smea(x, f), _brute_smea(x, f), rtol=1e-10)


def test_exact_mda_at_n30_f10_without_fallback():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 64))
    x[:10] += 0.3 * rng.normal(size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = R.mda(x, 10)
    sub, exact = S.mda_subset(np.maximum(
        np.diag(x @ x.T)[:, None] + np.diag(x @ x.T)[None, :] - 2 * x @ x.T, 0), 10)
    assert exact and sub.size == 20
    np.testing.assert_allclose(out, x[sub].mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("rule", [R.mda, R.smea])
def test_budget_exhausted_falls_back_with_a_warning(rule, monkeypatch):
    monkeypatch.setattr(S, "SMEA_ENUMERATION_LIMIT", 0)
    x = np.random.default_rng(1).normal(size=(14, 8))
    with pytest.warns(R.ApproximationWarning, match="greedy"):
        out = rule(x, 4, budget=3)
    assert out.shape == (8,) and np.isfinite(out).all()


@pytest.mark.parametrize("rule", [R.mda, R.smea])
def test_breakdown_raises(rule):
    with pytest.raises(R.BreakdownConditionError, match="n > 2f"):
        rule(np.zeros((6, 2)), 3)


@pytest.mark.parametrize("rule", [R.mda, R.smea])
def test_nonfinite_rows_are_dropped(rule):
    x = np.array([[0.0], [1.0], [2.0], [np.nan], [np.inf]])
    np.testing.assert_allclose(rule(x, 2), [1.0])
