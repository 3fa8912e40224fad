"""Aggregator classes generated from their pure functions, and example-count weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import verde.robust as R
from verde.robust.base import rule_class

HAND_WRITTEN = {"centered_clipping"}  # keeps a momentum centre between calls


@pytest.mark.parametrize("name", sorted(set(R.AGGREGATORS) - HAND_WRITTEN))
def test_registered_rules_are_generated_and_match_their_function(name, make_clustered):
    cls = R.AGGREGATORS[name]
    rule = cls(f=2)
    assert hasattr(rule, "params") and rule.name == name
    for key, value in rule.params.items():
        assert getattr(rule, key) == value
    assert repr(rule).startswith(f"{cls.__name__}(f=2")


def test_constructor_parameters_reach_the_function(make_clustered):
    x = make_clustered(11, 2, 8)
    np.testing.assert_array_equal(R.MultiKrum(f=2, m=3)(x), R.multi_krum(x, 2, 3))
    np.testing.assert_array_equal(R.GeometricMedian(f=2, nu=1e-3)(x),
                                  R.geometric_median(x, 2, nu=1e-3))
    assert R.StaticClipping().threshold == 1.0
    np.testing.assert_array_equal(R.StaticClipping(threshold=0.5)(x), R.static_clip(x, 0.5))


def test_unknown_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match=r"multi_krum: unknown parameter\(s\) \['k'\]"):
        R.MultiKrum(f=1, k=3)
    with pytest.raises(ValueError, match="unknown parameter"):
        R.make_aggregator("median", f=1, m=2)


def test_fresh_seed_rules_draw_a_new_seed_each_call_and_repeat_from_the_same_seed(
        make_clustered):
    x = make_clustered(11, 2, 50_000, seed=1, spread=1.0)
    a, b = R.DnC(f=2, seed=3, sub_dim=5), R.DnC(f=2, seed=3, sub_dim=5)
    first = [a(x) for _ in range(3)]
    again = [b(x) for _ in range(3)]
    for u, v in zip(first, again, strict=True):
        np.testing.assert_array_equal(u, v)


def test_a_function_parameter_without_default_needs_one():
    def rule(inputs, f, threshold, *, deterministic=False):
        return inputs[0]

    with pytest.raises(TypeError, match="threshold"):
        rule_class("no_default_rule", rule, "test")


def test_weighted_mean_is_the_example_weighted_average(make_clustered):
    x = make_clustered(7, 0, 5)
    w = np.array([1, 2, 3, 4, 5, 6, 70], dtype=float)
    np.testing.assert_allclose(R.mean(x, weights=w), np.average(x, axis=0, weights=w),
                               rtol=1e-12)
    np.testing.assert_allclose(R.Mean()(torch.tensor(x), weights=w).numpy(),
                               np.average(x, axis=0, weights=w), rtol=1e-12)


def test_subset_rules_average_their_choice_by_weight(make_clustered):
    x = make_clustered(11, 2, 6, seed=2)
    w = np.arange(1.0, 12.0)
    for fn in (lambda **k: R.multi_krum(x, 2, **k), lambda **k: R.mda(x, 2, **k),
               lambda **k: R.monna(x, 2, **k)):
        plain, weighted = fn(), fn(weights=w)
        assert not np.allclose(plain, weighted)
        # the chosen subset is the 9 honest vectors either way
        np.testing.assert_allclose(weighted, np.average(x[:9], axis=0, weights=w[:9]),
                                   rtol=1e-10)
        np.testing.assert_allclose(plain, x[:9].mean(axis=0), rtol=1e-10)


@pytest.mark.parametrize("bad", [[1.0, 2.0], [1.0] * 10 + [-1.0], [0.0] * 11,
                                 [1.0] * 10 + [np.nan]])
def test_bad_weights_raise(bad, make_clustered):
    with pytest.raises(R.RobustInputError, match="weights"):
        R.multi_krum(make_clustered(11, 2, 6), 2, weights=bad)


def test_weight_support_survives_only_worker_preserving_pre_aggregators():
    assert R.MultiKrum.supports_weights and not R.Median.supports_weights
    assert R.compose(R.NNM(f=2), R.MultiKrum(f=2)).supports_weights
    assert not R.compose(R.Bucketing(s=2), R.MultiKrum(f=2)).supports_weights
