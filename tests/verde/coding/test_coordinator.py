"""Coordinator: waits only for a decodable set, cancels the rest, survives faults."""

import threading
import time

import numpy as np
import pytest

from verde.coding import (
    Coordinator,
    FractionalRepetitionCode,
    InProcessWorker,
    RecomputingReferee,
    ReplicatedGroups,
    TooManyStragglers,
    ordered_sum,
)

GRADS = {p: np.full(4, float(p + 1), np.float32) for p in range(3)}


def _grad(_payload: object, p: int) -> np.ndarray:
    return GRADS[p]


def test_slow_workers_are_not_waited_for_and_are_recorded() -> None:
    code = FractionalRepetitionCode(6, 1)
    finished: list[int] = []

    def slow_then_note(payload: object, p: int) -> np.ndarray:
        finished.append(p)
        return GRADS[p]

    workers = [InProcessWorker(_grad) for _ in range(6)]
    workers[1] = InProcessWorker(slow_then_note, delay=lambda step: 5.0)
    with Coordinator(code, workers) as coord:
        start = time.monotonic()
        out = coord.run_step(0)
        assert time.monotonic() - start < 2.0
    assert 1 not in out.answered and 1 in out.stragglers
    assert out.gradient.tobytes() == ordered_sum([GRADS[0], GRADS[1], GRADS[2]]).tobytes()
    assert coord.history.straggle_rate(1) == 1.0
    assert finished == []  # the cancelled worker stopped before computing


def test_failures_beyond_s_raise_or_fall_back_as_configured() -> None:
    code = FractionalRepetitionCode(6, 1)

    def boom(_payload: object, _p: int) -> np.ndarray:
        raise RuntimeError("worker crashed")

    workers = [InProcessWorker(_grad) for _ in range(6)]
    workers[2] = workers[3] = InProcessWorker(boom)  # all of group 1
    with Coordinator(code, workers) as coord, pytest.raises(TooManyStragglers):
        coord.run_step(0)
    with Coordinator(code, workers, on_insufficient="approximate") as coord:
        out = coord.run_step(0)
    assert out.approximate and out.failed == (2, 3)
    np.testing.assert_array_equal(out.gradient, (GRADS[0] + GRADS[2]) * 1.5)


def test_timeout_turns_silent_workers_into_stragglers() -> None:
    code = FractionalRepetitionCode(4, 1)
    workers = [InProcessWorker(_grad, delay=lambda step: 3.0) for _ in range(4)]
    with Coordinator(code, workers, timeout_s=0.1) as coord, pytest.raises(TooManyStragglers):
        coord.run_step(0)


def test_byzantine_worker_is_identified_through_the_referee() -> None:
    code = ReplicatedGroups(6, replication=3, byzantine=1)

    def lie(_step: int, v: np.ndarray) -> np.ndarray:
        return v + 1

    workers = [InProcessWorker(_grad) for _ in range(6)]
    workers[5] = InProcessWorker(_grad, fault=lie)
    workers[3] = InProcessWorker(_grad, delay=lambda step: 0.3)  # 4 and the liar 5 answer first
    with Coordinator(code, workers,
                     referee=lambda step, payload: RecomputingReferee(lambda g: GRADS[g])) as c:
        out = c.run_step(0)
    assert out.gradient.tobytes() == (GRADS[0] + GRADS[1]).tobytes()
    assert out.faulty == (5,)
    assert {3, 4, 5} <= set(out.answered)  # the split made it wait for the third replica


def test_worker_count_must_match_the_code() -> None:
    with pytest.raises(ValueError, match="expects 4 workers"):
        Coordinator(FractionalRepetitionCode(4, 1), [InProcessWorker(_grad)])


def test_cancel_event_reaches_running_workers() -> None:
    ev = threading.Event()
    ev.set()
    worker = InProcessWorker(_grad, delay=lambda step: 1.0)
    from verde.coding import WorkerTask
    from verde.coding.coordinator import Cancelled

    with pytest.raises(Cancelled):
        worker.compute(WorkerTask(0, 0, (0,), (1.0,)), ev)
