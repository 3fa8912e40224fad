"""RobustStrategy on real Flower messages: FedAvg where it should be, robust where it must be."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

import verde.robust as R
from verde.engines.flower import RobustStrategy

SHAPES = {"w": (4, 3), "b": (3,)}


def _record(vec: np.ndarray, dtype=np.float32) -> ArrayRecord:
    w, b = vec[:12].reshape(4, 3), vec[12:]
    return ArrayRecord({"w": Array(w.astype(dtype)), "b": Array(b.astype(dtype))})


def _vec(record: ArrayRecord) -> np.ndarray:
    return np.concatenate([record["w"].numpy().reshape(-1), record["b"].numpy()])


def _reply(node: int, record: ArrayRecord, count: float, **extra) -> Message:
    request = Message(content=RecordDict({"arrays": _record(np.zeros(15))}), dst_node_id=node,
                      message_type=MessageType.TRAIN)
    return Message(content=RecordDict({"arrays": record,
                                       "metrics": MetricRecord({"num-examples": count,
                                                                **extra})}),
                   reply_to=request)


def _round(strategy, base: np.ndarray, replies: list[Message]):
    strategy.expect_updates_of(_record(base))  # what configure_train records: the model sent
    return strategy.aggregate_train(1, replies)


@pytest.fixture
def clients():
    rng = np.random.default_rng(0)
    base = rng.normal(size=15)
    updates = 0.02 * rng.normal(size=(10, 15)) + 0.1
    counts = rng.integers(20, 200, size=10).astype(float)
    return base, updates, counts


def test_weighted_mean_of_updates_is_fedavg(clients):
    base, updates, counts = clients
    replies = [_reply(100 + i, _record(base + u), c, loss=float(i))
               for i, (u, c) in enumerate(zip(updates, counts, strict=True))]
    ours, ours_metrics = _round(RobustStrategy("mean"), base, replies)
    theirs, theirs_metrics = FedAvg().aggregate_train(1, replies)
    np.testing.assert_allclose(_vec(ours), _vec(theirs), rtol=1e-6, atol=1e-6)
    assert ours_metrics["loss"] == pytest.approx(theirs_metrics["loss"])
    assert ours_metrics["verde.weighted-by-examples"] == 1
    assert ours_metrics["verde.excluded"] == 0 and ours_metrics["verde.rejected"] == 0


def test_unweighted_and_robust_rules_are_not_fedavg(clients):
    # Negative control: the comparison above can fail.
    base, updates, counts = clients
    replies = [_reply(100 + i, _record(base + u), c) for i, (u, c) in
               enumerate(zip(updates, counts, strict=True))]
    theirs, _ = FedAvg().aggregate_train(1, replies)
    for strategy in (RobustStrategy("mean", weighted=False), RobustStrategy("median", f=3)):
        ours, _ = _round(strategy, base, replies)
        assert not np.allclose(_vec(ours), _vec(theirs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rule,pre", [("multi_krum", ()), ("trimmed_mean", ()),
                                      ("median", ("nnm",)), ("geometric_median", ("arc",))])
def test_byzantine_updates_are_excluded_and_reported(clients, rule, pre):
    base, updates, counts = clients
    honest = updates[:7]
    byz = -10.0 * honest.mean(axis=0)
    replies = [_reply(100 + i, _record(base + u), c) for i, (u, c) in
               enumerate(zip(honest, counts, strict=False))]
    replies += [_reply(200 + i, _record(base + byz), 1e6) for i in range(3)]
    strategy = RobustStrategy(rule, f=3, pre=pre)
    ours, metrics = _round(strategy, base, replies)
    step = _vec(ours) - base.astype(np.float32)
    assert np.linalg.norm(step - honest.mean(axis=0)) < 0.5 * np.linalg.norm(honest.mean(axis=0))
    flagged = set(metrics["verde.excluded-nodes"]) | set(metrics["verde.downweighted-nodes"])
    assert {200, 201, 202} <= flagged
    assert flagged.isdisjoint(range(100, 107)) or rule in ("median", "trimmed_mean")
    assert strategy.last_report is not None and strategy.last_report.applied
    fedavg, _ = FedAvg().aggregate_train(1, replies)
    assert np.linalg.norm(_vec(fedavg) - base - honest.mean(axis=0)) > 2.0


def test_malformed_replies_are_rejected_not_fatal(clients):
    base, updates, counts = clients
    replies = [_reply(100 + i, _record(base + u), c) for i, (u, c) in
               enumerate(zip(updates[:8], counts, strict=False))]
    wrong_shape = ArrayRecord({"w": Array(np.zeros((3, 3), np.float32)),
                               "b": Array(np.zeros(3, np.float32))})
    replies.append(_reply(300, wrong_shape, 10.0))
    replies.append(_reply(301, _record(base + updates[9]), float("nan")))
    strategy = RobustStrategy("trimmed_mean", f=2)
    ours, metrics = _round(strategy, base, replies)
    assert ours is not None and metrics["verde.rejected"] == 2
    assert set(strategy.last_report.rejected) == {300, 301}
    assert "array 'w'" in strategy.last_report.rejected[300]
    with pytest.raises(Exception, match=r"same keys|ArrayRecord|shape|broadcast"):
        FedAvg().aggregate_train(1, replies)  # one bad reply fails the FedAvg round


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(ValueError, match="server_lr"):
        RobustStrategy("median", server_lr=0.0)
    with pytest.raises(ValueError, match="reference_fn"):
        RobustStrategy("fltrust")
    with pytest.raises(R.UnknownNameError, match="unknown aggregator"):
        RobustStrategy("no_such_rule")
    with pytest.raises(ValueError, match="verde aggregator"):
        RobustStrategy(object())


def test_fltrust_uses_the_servers_reference_update(clients):
    base, updates, counts = clients
    replies = [_reply(100 + i, _record(base + u), c) for i, (u, c) in
               enumerate(zip(updates, counts, strict=True))]
    replies[0] = _reply(100, _record(base - 50 * updates[0]), counts[0])
    good = updates[1:].mean(axis=0)
    strategy = RobustStrategy("fltrust", reference_fn=lambda rnd, arrays: _record(
        _vec(arrays) + good))
    ours, metrics = _round(strategy, base, replies)
    assert 100 in metrics["verde.excluded-nodes"]
    assert np.linalg.norm(_vec(ours) - base - good) < np.linalg.norm(good)


def test_too_few_usable_replies_skip_the_round(clients):
    base, updates, counts = clients
    replies = [_reply(100 + i, _record(base + u), c) for i, (u, c) in
               enumerate(zip(updates[:5], counts, strict=False))]
    assert _round(RobustStrategy("krum", f=3), base, replies) == (None, None)
