"""Byzantine replicated groups: a flipped bit is detected, outvoted, and its worker named."""

import numpy as np
import pytest
import torch

from verde.coding import RecomputingReferee, ReplicaMismatch, ReplicatedGroups, ordered_sum


def _flip_bit(v: np.ndarray) -> np.ndarray:
    out = v.copy()
    out.view(np.uint32)[-1] ^= 1
    return out


def _setup(n: int, r: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(7)
    grads = {p: rng.standard_normal(10).astype(np.float32) for p in range(n // r)}
    return grads, ordered_sum([grads[p] for p in range(n // r)])


def test_correct_mode_outvotes_and_names_the_faulty_replica() -> None:
    code = ReplicatedGroups(6, replication=3, byzantine=1)
    grads, expected = _setup(6, 3)
    answers = {w: code.encode(w, grads) for w in range(6)}
    answers[4] = _flip_bit(answers[4])
    out, decisions = code.decode_groups(answers)
    assert out.tobytes() == expected.tobytes()
    assert decisions[1].faulty == (4,)
    assert decisions[1].disputed and not decisions[0].disputed


def test_detect_mode_raises_naming_both_factions() -> None:
    code = ReplicatedGroups(4, replication=2, byzantine=1, mode="detect")
    grads, _ = _setup(4, 2)
    answers = {w: code.encode(w, grads) for w in range(4)}
    answers[3] = _flip_bit(answers[3])
    with pytest.raises(ReplicaMismatch, match=r"\[2\] vs \[3\]") as info:
        code.decode(answers)
    assert info.value.group == 1 and not info.value.corrected


def test_referee_settles_a_detected_mismatch() -> None:
    code = ReplicatedGroups(4, replication=2, byzantine=1, mode="detect")
    grads, expected = _setup(4, 2)
    answers = {w: code.encode(w, grads) for w in range(4)}
    answers[2] = _flip_bit(answers[2])
    referee = RecomputingReferee(lambda group: grads[group])
    out, decisions = code.decode_groups(answers, referee)
    assert out.tobytes() == expected.tobytes()
    assert decisions[1].faulty == (2,)


def test_two_liars_in_one_group_cannot_outvote_under_correct_mode_conditions() -> None:
    # r = 5 tolerates f = 2: two colluding liars with identical wrong bits lose 3 to 2.
    code = ReplicatedGroups(5, replication=5, byzantine=2)
    grads, expected = _setup(5, 5)
    answers = {w: code.encode(w, grads) for w in range(5)}
    bad = _flip_bit(answers[0])
    answers[0], answers[1] = bad, bad.copy()
    out, decisions = code.decode_groups(answers)
    assert out.tobytes() == expected.tobytes()
    assert decisions[0].faulty == (0, 1)


def test_decidable_waits_for_a_quorum_when_replicas_split() -> None:
    code = ReplicatedGroups(3, replication=3, byzantine=1)
    good = np.ones(3, np.float32)
    assert not code.decidable({0: good, 1: _flip_bit(good)})
    assert code.decidable({0: good, 1: _flip_bit(good), 2: good})
    assert code.decidable({0: good, 2: good})


def test_torch_answers_are_compared_bit_for_bit() -> None:
    code = ReplicatedGroups(3, replication=3, byzantine=1)
    g = torch.tensor([0.0, 1.0])
    neg_zero = torch.tensor([-0.0, 1.0])  # equal as numbers, different bits
    _, decisions = code.decode_groups({0: g, 1: g.clone(), 2: neg_zero})
    assert decisions[0].faulty == (2,)


@pytest.mark.parametrize(("r", "f", "s", "mode"), [(2, 1, 0, "correct"), (3, 1, 1, "correct"),
                                                   (1, 1, 0, "detect"), (3, 1, 0, "vote")])
def test_replication_below_the_bound_is_rejected(r: int, f: int, s: int, mode: str) -> None:
    with pytest.raises(ValueError):
        ReplicatedGroups(6, replication=r, byzantine=f, stragglers=s, mode=mode)  # type: ignore[arg-type]
