"""Ignore-stragglers: reweighted partial sums, unbiased over uniformly random stragglers."""

from itertools import combinations

import numpy as np
import pytest

from verde.coding import IgnoreStragglers, TooManyStragglers


def test_reweighting_is_unbiased_over_all_patterns() -> None:
    n, s = 6, 2
    code = IgnoreStragglers(n, s)
    rng = np.random.default_rng(0)
    grads = {p: rng.standard_normal(8) for p in range(n)}
    full = sum(grads[p] for p in range(n))
    outs = [code.decode({w: grads[w] for w in range(n) if w not in drop})
            for drop in combinations(range(n), s)]
    np.testing.assert_allclose(np.mean(outs, axis=0), full, rtol=1e-12, atol=1e-12)
    assert not np.allclose(outs[0], full)  # a single pattern is only an estimate


def test_needs_n_minus_s_answers() -> None:
    code = IgnoreStragglers(5, 1)
    with pytest.raises(TooManyStragglers):
        code.decode({0: np.ones(2), 1: np.ones(2), 2: np.ones(2)})
