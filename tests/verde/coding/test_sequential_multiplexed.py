"""M-SGC: every (B, W, lambda)-bursty pattern decodes exactly within T = W-2+B; others named."""

from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import product

import numpy as np
import pytest

from verde.coding import CyclicRepetitionCode, FractionalRepetitionCode, TooManyStragglers
from verde.coding.delays import ConformingBursty
from verde.coding.sequential_base import DeadlineMissed, Task
from verde.coding.sequential_model import BurstyStragglerModel
from verde.coding.sequential_multiplexed import CHUNK, CODED, MultiplexedRun, MultiplexedSGC
from verde.coding.sequential_verify import check_every_admitted_pattern, decode_stream

SMALL = [(3, 1, 2, 1), (4, 1, 2, 2), (4, 2, 3, 2), (4, 1, 3, 2), (3, 2, 4, 2), (4, 2, 4, 2),
         (3, 1, 2, 3), (4, 1, 2, 3), (5, 2, 4, 2), (6, 2, 4, 2), (6, 1, 3, 2),
         pytest.param(5, 2, 5, 3, marks=pytest.mark.slow)]  # ~22k states, ~10 s


@pytest.mark.parametrize(("n", "b", "w", "lam"), SMALL)
def test_every_conforming_pattern_of_any_length_meets_the_deadline(
        n: int, b: int, w: int, lam: int) -> None:
    scheme = MultiplexedSGC(n, b, w, lam)
    states = check_every_admitted_pattern(scheme, memory=w - 1)
    assert states > 5  # the search really branched


class _UnderModel:
    """A scheme whose master gives up on workers as a *different* model allows."""

    def __init__(self, scheme: MultiplexedSGC, model: BurstyStragglerModel) -> None:
        self.scheme, self.model, self.n_workers = scheme, model, scheme.n_workers

    def start(self) -> MultiplexedRun:
        return self.scheme.start()

    def admits(self, history: Sequence[Collection[int]], stragglers: Collection[int]) -> bool:
        return self.model.admits(history, stragglers)


@pytest.mark.parametrize(("looser", "needle"), [
    (BurstyStragglerModel(1, 2, 2), "distinct stragglers"),  # one more straggler per window
    (BurstyStragglerModel(2, 3, 1), "straggle again"),  # bursts one round longer
])
def test_patterns_outside_the_model_are_found_and_named(
        looser: BurstyStragglerModel, needle: str) -> None:
    scheme = MultiplexedSGC(4, 1, 2, 1)
    with pytest.raises(DeadlineMissed, match="left the \\(1, 2, 1\\) bursty model") as err:
        check_every_admitted_pattern(_UnderModel(scheme, looser), memory=looser.window - 1)
    assert needle in str(err.value)


def test_a_long_total_outage_misses_the_deadline_with_a_clear_error() -> None:
    scheme = MultiplexedSGC(4, 1, 3, 2)  # T = 2
    run = scheme.start()
    run.finish_round(set())
    with pytest.raises(DeadlineMissed) as err:
        for _ in range(4):
            run.finish_round({0, 1, 2, 3})  # everyone, for longer than B = 1 round
    msg = str(err.value)
    assert "job 0 is not decodable at its deadline (end of round 2)" in msg
    assert "chunks missing per worker" in msg and "left the (1, 3, 2) bursty model" in msg


def _grads(scheme: MultiplexedSGC, d: int = 17) -> Callable[[int], Mapping[int, np.ndarray]]:
    def of_job(job: int) -> Mapping[int, np.ndarray]:
        rng = np.random.default_rng(1000 + job)
        return {p: rng.standard_normal(d).astype(np.float32) for p in range(scheme.n_partitions)}
    return of_job


@pytest.mark.parametrize(("n", "b", "w", "lam"), [(6, 2, 4, 2), (6, 1, 3, 1), (4, 2, 5, 4)])
def test_decoding_is_bit_exact_with_fractional_repetition(
        n: int, b: int, w: int, lam: int) -> None:
    scheme = MultiplexedSGC(n, b, w, lam)
    assert scheme.code is None or isinstance(scheme.code, FractionalRepetitionCode)
    sd = ConformingBursty(b, w, lam, start_prob=0.4).sample(40, n, np.random.default_rng(n + w))
    pattern = sd > 4
    assert pattern.sum() > 10
    of_job = _grads(scheme)
    decoded = decode_stream(scheme, pattern, of_job)
    assert sorted(decoded) == list(range(40 - scheme.delay))
    for job, got in decoded.items():
        grads = of_job(job)
        assert got.tobytes() == scheme.reference_sum(grads).tobytes(), job
        np.testing.assert_allclose(got, np.sum(list(grads.values()), axis=0), rtol=1e-5,
                                   atol=1e-5)


def test_decoding_with_a_cyclic_group_code_is_accurate() -> None:
    scheme = MultiplexedSGC(5, 2, 4, 2)  # 3 does not divide 5: cyclic repetition
    assert isinstance(scheme.code, CyclicRepetitionCode)
    pattern = ConformingBursty(2, 4, 2, start_prob=0.4).sample(
        30, 5, np.random.default_rng(7)) > 4
    of_job = _grads(scheme)
    for job, got in decode_stream(scheme, pattern, of_job).items():
        want = np.sum(np.array(list(of_job(job).values()), dtype=np.float64), axis=0)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_decode_names_a_missing_chunk() -> None:
    scheme = MultiplexedSGC(4, 1, 3, 1)  # two chunks per worker, one coded group
    grads = _grads(scheme)(0)
    results = {}
    for w in range(4):
        for task in (Task(0, CHUNK, 0), Task(0, CHUNK, 1), Task(0, CODED, 0)):
            results[(w, task)] = scheme.encode(w, task, grads)
    assert scheme.decode(0, results).tobytes() == scheme.reference_sum(grads).tobytes()
    # a chunk message is the worker's running sum of its chunks
    assert results[(1, Task(0, CHUNK, 1))].tobytes() == (grads[2] + grads[3]).tobytes()
    del results[(2, Task(0, CHUNK, 1))]
    with pytest.raises(TooManyStragglers, match="chunk of workers \\[2\\]"):
        scheme.decode(0, results)


def test_plan_is_diagonally_interleaved_and_repeats_unfinished_chunks() -> None:
    scheme = MultiplexedSGC(4, 2, 3, 2)  # W-1 = 2 chunks, B = 2 groups, T = 3
    run = scheme.start()
    for _ in range(3):
        run.finish_round(set())
    plan = run.assignments()  # round 3: jobs 3, 2, 1, 0 in slots 0..3
    assert plan[0] == [Task(3, CHUNK, 0), Task(2, CHUNK, 1), Task(1, CODED, 0),
                       Task(0, CODED, 1)]
    run.finish_round({1})  # worker 1 straggles in round 3 (job 3 chunk 0, job 2 chunk 1, ...)
    plan = run.assignments()  # round 4: worker 1 repeats job 2's second chunk in the coded slot
    assert plan[1] == [Task(4, CHUNK, 0), Task(3, CHUNK, 0), Task(2, CHUNK, 1),
                       Task(1, CODED, 1)]
    assert plan[0][2] == Task(2, CODED, 0)


def test_load_is_the_papers_and_below_a_plain_code_with_the_same_guarantee() -> None:
    m = MultiplexedSGC(20, 2, 4, 2)
    assert m.delay == 4
    assert m.load == pytest.approx(3 * 5 / (20 * (3 * 3 + 2)))
    assert m.load < 3 / 20  # plain GC tolerating lambda = 2 per round
    assert MultiplexedSGC(4, 1, 2, 4).load == pytest.approx(2 / 4)  # lambda = n: no code


@pytest.mark.parametrize("args", [(0, 1, 2, 1), (4, 2, 2, 1), (4, 1, 2, 5), (4, 1, 2, -1)])
def test_bad_parameters_raise(args: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError):
        MultiplexedSGC(*args)


def test_bad_straggler_ids_raise() -> None:
    with pytest.raises(ValueError, match="stragglers must be workers"):
        MultiplexedSGC(4, 1, 2, 1).start().finish_round({4})


def test_every_short_conforming_pattern_decodes_to_the_same_bits() -> None:
    scheme = MultiplexedSGC(4, 1, 2, 1)  # T = 1, fractional repetition groups
    model = scheme.model
    of_job = _grads(scheme, d=5)
    rounds, seen = 4, 0
    for rows in product(range(5), repeat=rounds):  # per round: nobody, or one worker
        pattern = np.zeros((rounds, 4), dtype=bool)
        for r, choice in enumerate(rows):
            if choice:
                pattern[r, choice - 1] = True
        if not model.conforms(pattern):
            continue
        seen += 1
        decoded = decode_stream(scheme, pattern, of_job)
        assert sorted(decoded) == [0, 1, 2]
        for job, got in decoded.items():
            assert got.tobytes() == scheme.reference_sum(of_job(job)).tobytes(), (rows, job)
    assert seen > 50


def test_search_and_stream_reject_what_they_cannot_do() -> None:
    scheme = MultiplexedSGC(4, 2, 4, 2)
    with pytest.raises(ValueError, match="more than 3 states"):
        check_every_admitted_pattern(scheme, memory=3, max_states=3)
    with pytest.raises(ValueError, match="memory"):
        check_every_admitted_pattern(scheme, memory=-1)
    with pytest.raises(ValueError, match="bool rounds x 4"):
        decode_stream(scheme, np.zeros((5, 3), dtype=bool), _grads(scheme))
