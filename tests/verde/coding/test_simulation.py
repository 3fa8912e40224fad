"""Delay models keep their promises; schemes compare as the literature says they should."""

import numpy as np
import pytest

from verde.coding import Bursty, HeavyTailed, Multiplexed, SelectiveRepetition, ShiftedExponential
from verde.coding.simulate import compare


def test_bursty_pattern_respects_b_w_lambda() -> None:
    model = Bursty(burst=2, window=4, lam=2, start_prob=0.5)
    slow = model.sample(400, 10, np.random.default_rng(0)) > model.slowdown / 2
    assert slow.any()
    for t in range(400):
        window = slow[max(0, t - 3): t + 1]
        assert window.any(axis=0).sum() <= 2, t
    for w in range(10):
        run = 0
        for t in range(400):
            run = run + 1 if slow[t, w] else 0
            assert run <= 2


def test_heavy_tailed_hits_about_the_stated_fraction() -> None:
    x = HeavyTailed(fraction=0.2).sample(2000, 20, np.random.default_rng(1))
    assert 0.18 < (x > 4).mean() < 0.22


@pytest.mark.parametrize("bad", [HeavyTailed(fraction=1.2), ShiftedExponential(mean_extra=0)])
def test_bad_model_parameters_raise(bad: object) -> None:
    with pytest.raises(ValueError):
        bad.sample(10, 4, np.random.default_rng(0))  # type: ignore[attr-defined]


def test_codes_beat_wait_for_all_under_heavy_tailed_stragglers() -> None:
    sd = HeavyTailed(fraction=0.2).sample(300, 20, np.random.default_rng(2))
    r = compare(sd, 4)
    base = r["wait-for-all"].mean_step_time
    assert r["fractional"].mean_step_time / base <= 0.6
    assert r["sequential-selective-repetition"].mean_step_time / base <= 0.6
    # ... but not under mild jitter, where redundancy only adds load.
    mild = compare(ShiftedExponential(0.05).sample(300, 20, np.random.default_rng(3)), 4)
    assert mild["fractional"].mean_step_time > mild["wait-for-all"].mean_step_time


def test_sequential_schemes_meet_their_delay_budget_with_less_load() -> None:
    sd = Bursty().sample(300, 20, np.random.default_rng(4))
    for scheme in (SelectiveRepetition(20, 2, 4, 2), Multiplexed(20, 2, 4, 2)):
        run = scheme.run(sd)
        assert run.max_lateness <= 2
        assert run.mean_load < 5 / 20  # fractional repetition with s=4 has load 5/20


def test_sequential_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="divide"):
        SelectiveRepetition(20, 3, 4, 2)
    with pytest.raises(ValueError, match="delay"):
        Multiplexed(20, 2, 4, -1)
