"""Round-level timing: where M-SGC's lighter load pays off, and where it does not."""

import numpy as np
import pytest

from verde.coding import HeavyTailed
from verde.coding.delays import ConformingBursty
from verde.coding.sequential_multiplexed import MultiplexedSGC
from verde.coding.sequential_selective import PerRoundGC, SelectiveRepeatSGC
from verde.coding.sequential_timing import time_schedule


def _wait_for_all(sd: np.ndarray) -> float:
    return float((sd / sd.shape[1]).max(axis=1).mean())


def test_m_sgc_wins_on_conforming_bursty_stragglers() -> None:
    n = 20
    sd = ConformingBursty(2, 5, 4, start_prob=0.1).sample(300, n, np.random.default_rng(0))
    m = time_schedule(MultiplexedSGC(n, 2, 5, 4), sd)
    sr = time_schedule(SelectiveRepeatSGC(n, 2, 5, 4), sd)
    gc = time_schedule(PerRoundGC(n, 4), sd, patience=None)
    assert m.max_lateness <= 5 and sr.max_lateness <= 2 and gc.max_lateness == 0
    assert m.mean_step_time < sr.mean_step_time < gc.mean_step_time < _wait_for_all(sd)
    assert m.mean_load < sr.mean_load < gc.mean_load


def test_m_sgc_does_not_help_against_memoryless_heavy_tails() -> None:
    # i.i.d. stragglers keep re-straggling inside a window, which the bursty model forbids,
    # so the master must wait for them; a per-round code does far better.
    n = 20
    sd = HeavyTailed(fraction=0.2).sample(300, n, np.random.default_rng(1))
    m = time_schedule(MultiplexedSGC(n, 2, 5, 4), sd)
    gc = time_schedule(PerRoundGC(n, 4), sd, patience=None)
    assert gc.mean_step_time < 0.5 * m.mean_step_time


def test_timing_rejects_bad_inputs() -> None:
    scheme = MultiplexedSGC(4, 1, 2, 1)
    with pytest.raises(ValueError, match="rounds x 4"):
        time_schedule(scheme, np.ones((5, 3)))
    with pytest.raises(ValueError, match="positive"):
        time_schedule(scheme, np.zeros((5, 4)))
    with pytest.raises(ValueError, match="patience"):
        time_schedule(scheme, np.ones((5, 4)), patience=-1.0)
