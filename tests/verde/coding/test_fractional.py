"""Fractional repetition: exact, bit-identical decoding for every straggler pattern up to s."""

from itertools import combinations

import numpy as np
import pytest
import torch

from verde.coding import FractionalRepetitionCode, TooManyStragglers, ordered_sum


def _partition_grads(k: int, d: int = 33, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {p: rng.standard_normal(d).astype(np.float32) for p in range(k)}


@pytest.mark.parametrize(("n", "s"), [(4, 1), (6, 1), (6, 2), (8, 3), (9, 2)])
def test_every_pattern_up_to_s_decodes_to_the_same_bits(n: int, s: int) -> None:
    code = FractionalRepetitionCode(n, s)
    grads = _partition_grads(code.n_partitions)
    expected = ordered_sum([grads[p] for p in range(code.n_partitions)])
    messages = {w: code.encode(w, grads) for w in range(n)}
    for k in range(s + 1):
        for stragglers in combinations(range(n), k):
            answers = {w: m for w, m in messages.items() if w not in stragglers}
            assert code.can_decode(list(answers))
            got = code.decode(answers)
            assert got.tobytes() == expected.tobytes(), stragglers


def test_a_whole_group_missing_is_refused_with_the_group_named() -> None:
    code = FractionalRepetitionCode(6, 1)
    grads = _partition_grads(3)
    answers = {w: code.encode(w, grads) for w in (0, 1, 4, 5)}  # group 1 = workers 2, 3
    assert not code.can_decode(list(answers))
    with pytest.raises(TooManyStragglers, match=r"groups \[1\]"):
        code.decode(answers)


def test_more_than_s_stragglers_can_still_decode_if_every_group_answered() -> None:
    code = FractionalRepetitionCode(6, 1)
    grads = _partition_grads(3)
    answers = {w: code.encode(w, grads) for w in (0, 2, 4)}
    assert code.decode(answers).tobytes() == ordered_sum([grads[0], grads[1], grads[2]]).tobytes()


def test_torch_tensors_decode_and_inputs_are_not_mutated() -> None:
    code = FractionalRepetitionCode(4, 1)
    grads = {p: torch.arange(5, dtype=torch.float32) * (p + 1) for p in range(2)}
    before = {p: g.clone() for p, g in grads.items()}
    out = code.decode({w: code.encode(w, grads) for w in (1, 2)})
    assert torch.equal(out, grads[0] + grads[1])
    assert all(torch.equal(grads[p], before[p]) for p in grads)
    out.add_(1)  # the result shares no memory with any answer
    assert all(torch.equal(grads[p], before[p]) for p in grads)


@pytest.mark.parametrize(("n", "s"), [(5, 1), (6, 3), (3, 3), (0, 0), (4, -1)])
def test_bad_shapes_are_rejected(n: int, s: int) -> None:
    with pytest.raises(ValueError):
        FractionalRepetitionCode(n, s)


def test_bad_worker_index_is_rejected() -> None:
    with pytest.raises(ValueError, match="worker"):
        FractionalRepetitionCode(4, 1).partitions_of(4)
