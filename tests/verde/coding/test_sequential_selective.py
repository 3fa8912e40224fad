"""SR-SGC meets T = B on every (B, W, lambda) pattern; a plain code needs s = lambda for T = 0."""

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pytest

from verde.coding import FractionalRepetitionCode
from verde.coding.delays import ConformingBursty
from verde.coding.sequential_base import DeadlineMissed, Task
from verde.coding.sequential_model import BurstyStragglerModel
from verde.coding.sequential_multiplexed import CODED
from verde.coding.sequential_selective import OneCodePerJobRun, PerRoundGC, SelectiveRepeatSGC
from verde.coding.sequential_verify import check_every_admitted_pattern, decode_stream


@pytest.mark.parametrize(("n", "b", "w", "lam"), [(3, 1, 2, 1), (4, 1, 2, 2), (4, 2, 3, 2),
                                                   (4, 1, 3, 2), (4, 1, 2, 3), (5, 2, 5, 4),
                                                   (5, 2, 5, 3), (5, 3, 4, 3)])
def test_every_conforming_pattern_meets_deadline_b(n: int, b: int, w: int, lam: int) -> None:
    scheme = SelectiveRepeatSGC(n, b, w, lam)
    assert scheme.delay == b
    assert check_every_admitted_pattern(scheme, memory=w - 1) > 5


class _UnderModel:
    def __init__(self, scheme: PerRoundGC | SelectiveRepeatSGC,
                 model: BurstyStragglerModel) -> None:
        self.scheme, self.model, self.n_workers = scheme, model, scheme.n_workers

    def start(self) -> OneCodePerJobRun:
        return self.scheme.start()

    def admits(self, history: Sequence[Collection[int]], stragglers: Collection[int]) -> bool:
        return self.model.admits(history, stragglers)


def test_plain_code_needs_lambda_stragglers_per_round() -> None:
    model = BurstyStragglerModel(1, 2, 2)
    assert check_every_admitted_pattern(_UnderModel(PerRoundGC(4, 2), model), memory=1) > 1
    with pytest.raises(DeadlineMissed, match="more than this code tolerates \\(s=1\\)"):
        check_every_admitted_pattern(_UnderModel(PerRoundGC(4, 1), model), memory=1)


def test_sr_sgc_outside_its_model_is_reported() -> None:
    scheme = SelectiveRepeatSGC(4, 1, 2, 1)  # s = 1, T = 1
    with pytest.raises(DeadlineMissed, match="left the \\(1, 2, 1\\) bursty model"):
        check_every_admitted_pattern(_UnderModel(scheme, BurstyStragglerModel(1, 2, 3)),
                                     memory=1)


def test_unfinished_tasks_are_selectively_repeated_b_rounds_later() -> None:
    scheme = SelectiveRepeatSGC(6, 2, 5, 4)  # s = ceil(8/6) = 2, T = 2
    run = scheme.start()
    assert run.finish_round({0, 1, 2, 5}) == []  # heard from 3, 4 only: 4 missing, s = 2
    assert run.finish_round(set()) == [1]
    plan = run.assignments()  # round 2: the 4 - 2 = 2 lowest missing workers repeat job 0
    assert plan[0] == [Task(0, CODED, 0)] and plan[1] == [Task(0, CODED, 0)]
    assert plan[2] == [Task(2, CODED, 0)]
    assert run.finish_round(set()) == [0, 2]


def test_decoding_is_bit_exact_with_fractional_repetition() -> None:
    scheme = SelectiveRepeatSGC(6, 2, 5, 4)
    assert isinstance(scheme.code, FractionalRepetitionCode)
    pattern = ConformingBursty(2, 5, 4, start_prob=0.4).sample(
        40, 6, np.random.default_rng(3)) > 4
    assert pattern.sum() > 10

    def of_job(job: int) -> Mapping[int, np.ndarray]:
        rng = np.random.default_rng(job)
        return {p: rng.standard_normal(9).astype(np.float32)
                for p in range(scheme.n_partitions)}

    decoded = decode_stream(scheme, pattern, of_job)
    assert len(decoded) == 38
    for job, got in decoded.items():
        assert got.tobytes() == scheme.reference_sum(of_job(job)).tobytes()


def test_sr_sgc_load_is_the_papers() -> None:
    sr = SelectiveRepeatSGC(20, 2, 5, 4)
    assert sr.stragglers == 2 and sr.load == pytest.approx(3 / 20)
    assert PerRoundGC(20, 4).load == pytest.approx(5 / 20)


@pytest.mark.parametrize("args", [(20, 2, 4, 2), (20, 3, 3, 1), (4, 1, 2, 5)])
def test_bad_parameters_raise(args: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError):
        SelectiveRepeatSGC(*args)
