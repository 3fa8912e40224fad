"""Descent: finds exactly the first differing leaf, catches lies, resumes from JSON."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import (
    Descent,
    DescentFinished,
    InconsistentAnswer,
    MalformedInput,
    MerkleTree,
    NodePosition,
    NoDivergence,
    UnsupportedVersion,
    first_divergent_leaf,
    leaf_hash,
    node_hash,
)


def _trees(n: int, differ: set[int]) -> tuple[list[bytes], list[bytes], MerkleTree, MerkleTree]:
    a = [i.to_bytes(4, "little") for i in range(n)]
    b = [x + (b"!" if i in differ else b"") for i, x in enumerate(a)]
    return a, b, MerkleTree(a), MerkleTree(b)


def _expected_rounds(n: int, index: int) -> int:
    rounds, lo, hi = 0, 0, n
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        lo, hi = (lo, lo + k) if index < lo + k else (lo + k, hi)
        rounds += 1
    return rounds


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(1, 200))
def test_descent_finds_exactly_the_first_differing_leaf(data, n: int) -> None:
    differ = set(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6)))
    a, b, ta, tb = _trees(n, differ)
    result = first_divergent_leaf(n, ta.root, tb.root, ta.children, tb.children)
    first = min(differ)
    assert result.leaf_index == first
    assert result.leaf_hash_a == leaf_hash(a[first])
    assert result.leaf_hash_b == leaf_hash(b[first])
    assert len(result.rounds) == _expected_rounds(n, first) <= math.ceil(math.log2(n))
    assert all(r.went in ("left", "right") for r in result.rounds)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), n=st.integers(2, 64))
def test_resuming_from_json_after_every_round_gives_the_same_result(data, n: int) -> None:
    differ = set(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4)))
    _, _, ta, tb = _trees(n, differ)
    descent = Descent.start(n, ta.root, tb.root)
    while (pos := descent.next_position()) is not None:
        descent.record(ta.children(pos), tb.children(pos))
        descent = Descent.from_json(json.dumps(descent.to_json()))
    assert descent.done
    assert descent.leaf_index == min(differ)
    assert descent.leaf_hashes == (ta.leaf_hash(min(differ)), tb.leaf_hash(min(differ)))
    assert len(descent.rounds) == _expected_rounds(n, min(differ))


def test_single_leaf_tree_needs_no_rounds() -> None:
    ta, tb = MerkleTree([b"x"]), MerkleTree([b"y"])
    descent = Descent.start(1, ta.root, tb.root)
    assert descent.done and descent.next_position() is None
    assert descent.leaf_index == 0
    assert descent.leaf_hashes == (leaf_hash(b"x"), leaf_hash(b"y"))
    descent.check_leaf("a", b"x")
    with pytest.raises(InconsistentAnswer) as info:
        descent.check_leaf("b", b"x")
    assert info.value.party == "b"
    with pytest.raises(DescentFinished):
        descent.record((b"\x00" * 32, b"\x00" * 32), (b"\x00" * 32, b"\x00" * 32))


def test_equal_roots_raise_no_divergence() -> None:
    t = MerkleTree([b"a", b"b"])
    with pytest.raises(NoDivergence):
        Descent.start(2, t.root, t.root)
    with pytest.raises(NoDivergence):
        first_divergent_leaf(2, t.root, t.root, t.children, t.children)


def test_agree_on_left_disagree_on_right() -> None:
    _, _, ta, tb = _trees(8, {6})
    descent = Descent.start(8, ta.root, tb.root)
    rnd = descent.record(ta.children(NodePosition(0, 8)), tb.children(NodePosition(0, 8)))
    assert rnd.answer_a[0] == rnd.answer_b[0] and rnd.answer_a[1] != rnd.answer_b[1]
    assert rnd.went == "right" and descent.position == NodePosition(4, 8)


def _lying(tree: MerkleTree, lie_at: NodePosition, answer) -> object:
    def query(pos: NodePosition):
        return answer if pos == lie_at else tree.children(pos)

    return query


def test_party_copying_the_other_partys_children_is_caught() -> None:
    _, _, ta, tb = _trees(10, {3})
    root = NodePosition(0, 10)
    with pytest.raises(InconsistentAnswer) as info:
        first_divergent_leaf(10, ta.root, tb.root, ta.children, _lying(tb, root, ta.children(root)))
    assert info.value.party == "b" and info.value.parties == ("b",)
    assert info.value.position == root
    assert "do not hash" in info.value.reasons["b"]


def test_both_lying_reports_both_and_state_is_unchanged() -> None:
    _, _, ta, tb = _trees(10, {3})
    descent = Descent.start(10, ta.root, tb.root)
    pos = descent.next_position()
    bad = (b"\x01" * 32, b"\x02" * 32)
    before = descent.to_json()
    with pytest.raises(InconsistentAnswer) as info:
        descent.record(bad, bad)
    assert info.value.parties == ("a", "b") and info.value.party == "both"
    assert descent.to_json() == before and descent.next_position() == pos


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(2, 100))
def test_any_deviation_deep_in_the_walk_is_caught(data, n: int) -> None:
    differ = {data.draw(st.integers(0, n - 1))}
    _, _, ta, tb = _trees(n, differ)
    honest = first_divergent_leaf(n, ta.root, tb.root, ta.children, tb.children)
    rnd = data.draw(st.sampled_from(honest.rounds))
    side = data.draw(st.integers(0, 1))
    pair = list(ta.children(rnd.position))
    pair[side] = bytes([pair[side][0] ^ 1]) + pair[side][1:]
    with pytest.raises(InconsistentAnswer) as info:
        first_divergent_leaf(
            n, ta.root, tb.root, _lying(ta, rnd.position, tuple(pair)), tb.children
        )
    assert info.value.party == "a" and info.value.position == rnd.position


@pytest.mark.parametrize(
    "answer",
    [None, (b"\x00" * 32,), (b"\x00" * 31, b"\x00" * 32), ("00" * 32, "00" * 32), b"\x00" * 64],
)
def test_malformed_answers_count_against_the_party(answer) -> None:
    _, _, ta, tb = _trees(4, {0})
    descent = Descent.start(4, ta.root, tb.root)
    with pytest.raises(InconsistentAnswer) as info:
        descent.record(ta.children(NodePosition(0, 4)), answer)
    assert info.value.party == "b"


def test_a_consistent_liar_is_walked_to_its_first_false_leaf() -> None:
    # A party may commit to any tree; descent then ends on the first leaf of its tree that
    # differs, and the leaf check holds it to that commitment.
    a = [bytes([i]) for i in range(7)]
    fake = list(a)
    fake[5] = b"forged"
    ta, tb = MerkleTree(a), MerkleTree(fake)
    d = Descent.start(7, ta.root, tb.root)
    while (pos := d.next_position()) is not None:
        d.record(ta.children(pos), tb.children(pos))
    assert d.leaf_index == 5
    d.check_leaf("b", b"forged")
    with pytest.raises(InconsistentAnswer):
        d.check_leaf("b", bytes([5]))


def test_tampered_or_malformed_saved_state() -> None:
    _, _, ta, tb = _trees(16, {9})
    d = Descent.start(16, ta.root, tb.root)
    for _ in range(2):
        pos = d.next_position()
        d.record(ta.children(pos), tb.children(pos))
    saved = d.to_json()
    bad_hash = json.loads(json.dumps(saved))
    bad_hash["rounds"][1]["a"][0] = "00" * 32
    bad_side = json.loads(json.dumps(saved))
    bad_side["rounds"][0]["went"] = "left" if saved["rounds"][0]["went"] == "right" else "right"
    bad_pos = json.loads(json.dumps(saved))
    bad_pos["rounds"][1]["position"] = [0, 8]
    for doc in (bad_hash, bad_side, bad_pos, {**saved, "root_a": "xyz"}, {**saved, "extra": 1}):
        with pytest.raises(MalformedInput):
            Descent.from_json(doc)
    with pytest.raises(UnsupportedVersion):
        Descent.from_json({**saved, "version": 2})
    with pytest.raises(DescentFinished):
        _ = d.leaf_index


def test_bad_start_arguments() -> None:
    r = node_hash(b"\x00" * 32, b"\x00" * 32)
    for args in ((0, r, b"\x00" * 32), (4, r, b"\x00" * 31), (4, "ab" * 32, r), (True, r, r[::-1])):
        with pytest.raises(MalformedInput):
            Descent.start(*args)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from([b"", b"0", b"1"]), st.sampled_from([b"", b"0", b"1"])),
        min_size=1,
        max_size=50,
    )
)
def test_descent_on_arbitrary_pairs_of_trees(pairs: list[tuple[bytes, bytes]]) -> None:
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    ta, tb = MerkleTree(a), MerkleTree(b)
    if a == b:
        with pytest.raises(NoDivergence):
            first_divergent_leaf(len(a), ta.root, tb.root, ta.children, tb.children)
        return
    first = next(i for i, (x, y) in enumerate(pairs) if x != y)
    result = first_divergent_leaf(len(a), ta.root, tb.root, ta.children, tb.children)
    assert result.leaf_index == first
