"""A round aggregated in column chunks, with the updates written as it goes, gives the bits of
the rule run on the whole update matrix; and the matrix reused across rounds leaks nothing
from one round into the next."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MessageType, MetricRecord, RecordDict

import verde.robust as R
from verde.engines.flower import RobustStrategy, strategy
from verde.engines.flower.records import (
    RecordLayoutError,
    flatten_arrays,
    floating_parts,
    write_differences,
)

# Pieces of 1500, 2100 and 1400 floats (and an integer counter) across 1024-column chunks.
SHAPES = {"a": (1500,), "b": (30, 70), "steps": (1,), "c": (1400,)}
D = 5000


def _record(vec: np.ndarray, steps: int = 0) -> ArrayRecord:
    out, at = {}, 0
    for key, shape in SHAPES.items():
        if key == "steps":
            out[key] = Array(np.array([steps], dtype=np.int64))
            continue
        size = int(np.prod(shape))
        out[key] = Array(vec[at:at + size].reshape(shape).astype(np.float32))
        at += size
    return ArrayRecord(out)


def _reply(node: int, record: ArrayRecord, count: float = 100.0) -> Message:
    request = Message(content=RecordDict({"arrays": record}), dst_node_id=node,
                      message_type=MessageType.TRAIN)
    return Message(content=RecordDict({"arrays": record, "metrics": MetricRecord(
        {"num-examples": count})}), reply_to=request)


def _clients(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(D).astype(np.float32)
    weights = base + 0.05 * rng.standard_normal((n, D)).astype(np.float32)
    weights[0, :50] = 1e6  # one loud client
    return base, weights


def _aggregate(strat: RobustStrategy, base: np.ndarray, weights: np.ndarray) -> np.ndarray:
    strat.expect_updates_of(_record(base))
    new, _ = strat.aggregate_train(1, [_reply(10 + i, _record(w, steps=i))
                                       for i, w in enumerate(weights)])
    assert new is not None
    assert np.array_equal(new["steps"].numpy(), [0])  # the global model's counter is kept
    vec, _, _ = flatten_arrays(new)
    return vec


@pytest.mark.parametrize(("rule", "n", "f"), [("median", 9, 2), ("trimmed_mean", 30, 6),
                                              ("meamed", 9, 2), ("meamed", 30, 6)])
def test_chunked_round_equals_the_rule_on_the_whole_matrix(
        rule: str, n: int, f: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategy, "CHUNK_BYTES", 1)  # 1024 columns: chunks cut every piece
    assert strategy.column_chunk(n, 4) == 1024
    base, weights = _clients(n, seed=n)
    updates = weights - base  # float32, as the strategy computes them
    expected = base + getattr(R, rule)(updates, f)
    got = _aggregate(RobustStrategy(rule, f=f), base, weights)
    assert np.array_equal(got, expected)


def test_chunked_weighted_mean_is_fedavgs_average(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategy, "CHUNK_BYTES", 1)
    base, weights = _clients(6, seed=1)
    got = _aggregate(RobustStrategy("mean"), base, weights)
    np.testing.assert_allclose(got, base + (weights - base).mean(axis=0), rtol=1e-5, atol=1e-5)


def test_a_non_coordinatewise_rule_sees_the_whole_matrix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Krum compares whole vectors: chunked, it would pick a client per chunk.
    monkeypatch.setattr(strategy, "CHUNK_BYTES", 1)
    base, weights = _clients(7, seed=2)
    got = _aggregate(RobustStrategy("krum", f=1), base, weights)
    picked = [i for i in range(7) if np.array_equal(got, base + (weights[i] - base))]
    assert len(picked) == 1 and picked[0] != 0


def test_the_reused_matrix_carries_nothing_between_rounds() -> None:
    reused = RobustStrategy("median", f=2)
    for n, seed in ((9, 3), (12, 4), (9, 5), (7, 6)):  # shape changes and comes back
        base, weights = _clients(n, seed)
        fresh = _aggregate(RobustStrategy("median", f=2), base, weights)
        assert np.array_equal(_aggregate(reused, base, weights), fresh)


def test_a_rejected_reply_is_not_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategy, "CHUNK_BYTES", 1)
    base, weights = _clients(9, seed=7)
    strat = RobustStrategy("median", f=2)
    strat.expect_updates_of(_record(base))
    bad = ArrayRecord({"a": Array(np.zeros(3, dtype=np.float32))})
    replies = [_reply(10 + i, _record(w)) for i, w in enumerate(weights)]
    replies.insert(4, _reply(99, bad))
    new, metrics = strat.aggregate_train(1, replies)
    assert new is not None and metrics["verde.rejected-nodes"] == [99]
    vec, _, _ = flatten_arrays(new)
    assert np.array_equal(vec, base + R.median(weights - base, 1))  # f shrinks by one


def test_write_differences_covers_any_column_range() -> None:
    base, weights = _clients(3, seed=8)
    records = [_record(w) for w in weights]
    layout = flatten_arrays(records[0])[2]
    parts = [floating_parts(r, layout) for r in records]
    out = np.full((3, D), np.nan, dtype=np.float32)
    for a, b in ((0, 1), (1, 1499), (1499, 1501), (1501, 3600), (3600, 3601), (3601, D)):
        write_differences(parts, base, out, a, b)
    assert np.array_equal(out, weights - base)
    write_differences([], base, out, 0, D)  # no rows: nothing to write


def test_floating_parts_refuse_another_layout() -> None:
    base, _ = _clients(1, seed=9)
    layout = flatten_arrays(_record(base))[2]
    other = ArrayRecord({k: Array(np.zeros(s, dtype=np.float64)) for k, s in SHAPES.items()})
    with pytest.raises(RecordLayoutError, match="array 'a' is float64"):
        floating_parts(other, layout)
