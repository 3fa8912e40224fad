"""Attacks: values by hand, the min-max/min-sum conditions are tight, line search does damage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import verde.robust as R
from verde.robust.attacks import alie_z
from verde.robust.attacks_optimal import line_search

H = np.array([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]])
MU = H.mean(axis=0)
SD = H.std(axis=0, ddof=1)


@pytest.mark.parametrize("backend", [np.asarray, torch.tensor])
def test_simple_attacks_by_hand(backend, hash_of):
    h = backend(H.copy())
    before = hash_of(h)
    np.testing.assert_allclose(np.asarray(R.sign_flipping(h, 2)), [-MU, -MU])
    np.testing.assert_allclose(np.asarray(R.ipm(h, 1, eps=0.5)), [-0.5 * MU])
    np.testing.assert_allclose(np.asarray(R.alie(h, 2, z=1.5)), [MU + 1.5 * SD] * 2)
    np.testing.assert_allclose(np.asarray(R.mimic(h, 2, target=1)), [H[1], H[1]])
    assert np.isposinf(np.asarray(R.inf_attack(h, 3))).all()
    assert np.isnan(np.asarray(R.nan_attack(h, 3))).all()
    assert np.asarray(R.gaussian(h, 4, std=2.0)).shape == (4, 2)
    assert np.asarray(R.sign_flipping(h, 0)).shape == (0, 2)
    assert hash_of(h) == before


def test_attack_outputs_keep_type_and_dtype():
    h = torch.tensor(H, dtype=torch.float16)
    for name in sorted(set(R.ATTACKS) - {"label_flipping"}):
        out = R.make_attack(name)(h, 2, aggregator=R.Median(2))
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float16 and out.shape == (2, 2)


def test_alie_default_z_is_baruchs():
    # n = 50, f = 12: s = floor(26) - 12 = 14, z = Phi^-1(36/50)
    assert alie_z(50, 12) == pytest.approx(0.5828415072712162, rel=1e-9)
    np.testing.assert_allclose(R.alie(H, 2), [MU + alie_z(5, 2) * SD] * 2)


@pytest.mark.parametrize("rule", [R.min_max, R.min_sum])
@pytest.mark.parametrize("direction", ["std", "sign", "unit"])
def test_min_max_min_sum_conditions_are_tight(rule, direction):
    rng = np.random.default_rng(0)
    h = rng.normal(size=(7, 5)) + 1.0
    m = rule(h, 1, direction=direction)[0]
    pd = np.linalg.norm(h[:, None] - h[None], axis=2)
    if rule is R.min_max:
        lhs, rhs = np.linalg.norm(h - m, axis=1).max(), pd.max()
    else:
        lhs, rhs = (np.linalg.norm(h - m, axis=1) ** 2).sum(), (pd ** 2).sum(axis=1).max()
    assert lhs == pytest.approx(rhs, rel=1e-9)  # on the boundary: as far as allowed, no further
    assert not np.allclose(m, h.mean(axis=0))


def test_min_max_bad_direction():
    with pytest.raises(ValueError, match="direction"):
        R.min_max(H, 1, direction="up")


def test_line_search_finds_the_maximum():
    best = line_search(lambda x: -(np.log(x) - np.log(3.7)) ** 2, 0.1, 100.0)
    assert best == pytest.approx(3.7, rel=0.05)


@pytest.mark.parametrize("name,fixed", [("optimal_alie", R.alie),
                                        ("optimal_ipm", R.ipm)])
def test_optimal_attacks_hurt_at_least_as_much_as_fixed_ones(name, fixed):
    rng = np.random.default_rng(2)
    h = rng.normal(size=(13, 20)) + 0.5
    defence = R.TrimmedMean(4)
    mu = h.mean(axis=0)
    damage = lambda b: np.linalg.norm(defence(np.vstack([h, b])) - mu)  # noqa: E731
    attack = R.make_attack(name)
    optimal = attack(h, 4, aggregator=defence)
    assert damage(optimal) >= damage(fixed(h, 4)) - 1e-12
    with pytest.raises(ValueError, match="aggregator"):
        attack(h, 4)


def test_optimal_attack_does_not_advance_a_stateful_defence():
    h = np.random.default_rng(3).normal(size=(9, 6))
    cc = R.CenteredClipping(2, tau=1.0)
    R.make_attack("optimal_alie")(h, 2, aggregator=cc)
    assert cc._previous is None


def test_mimic_heuristic_copies_the_most_outlying_worker():
    h = np.array([[0.0, 0.0], [0.1, 0.0], [-0.1, 0.0], [3.0, 0.1]])
    out = R.MimicHeuristic()(h, 2)
    np.testing.assert_array_equal(out, [h[3], h[3]])


def test_label_flipping_is_a_data_attack():
    lf = R.make_attack("label_flipping")
    assert lf.kind == "data"
    np.testing.assert_array_equal(lf.flip(np.array([0, 3, 9]), 10), [9, 6, 0])
    with pytest.raises(ValueError, match="data attack"):
        lf(H, 1)


def test_unknown_names_raise():
    with pytest.raises(R.UnknownNameError, match="unknown attack"):
        R.make_attack("nope")
    with pytest.raises(R.UnknownNameError, match="unknown aggregator"):
        R.make_aggregator("nope")
    with pytest.raises(R.UnknownNameError, match="unknown pre-aggregator"):
        R.make_pre_aggregator("nope")
