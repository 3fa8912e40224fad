"""weighted_metric_average: Flower's default client-metric average, value for value."""

from __future__ import annotations

import pytest
from flwr.app import ArrayRecord, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from verde.engines.flower import RobustStrategy
from verde.engines.flower.metrics import weighted_metric_average


def _contents(counts: list[float | int]) -> list[RecordDict]:
    """Replies with scalar, integer and list metrics, an ArrayRecord first, and a second
    MetricRecord in the last one (both functions read every MetricRecord of a reply)."""
    out = []
    for i, n in enumerate(counts):
        records: dict = {"arrays": ArrayRecord(),
                         "metrics": MetricRecord({"num-examples": n, "loss": 0.1 * i + 1 / 3,
                                                  "correct": i * 7, "hits": [i, 2 * i],
                                                  "per-class": [0.25 * i, 0.5 * i]})}
        if i == len(counts) - 1:
            records["extra"] = MetricRecord({"time": 2.0 / 3})
        out.append(RecordDict(records))
    return out


@pytest.mark.parametrize("counts", [[10, 250, 31, 7], [0.5, 3.25, 1e6], [5]])
def test_same_values_as_flowers_average(counts: list[float | int]) -> None:
    contents = _contents(counts)
    ours = weighted_metric_average(contents, "num-examples")
    theirs = aggregate_metricrecords(contents, "num-examples")
    assert dict(ours) == dict(theirs)  # exact: the same float operations in the same order
    assert set(ours) == {"loss", "correct", "per-class", "hits", "time"}  # not the count
    if len(counts) > 1:  # the weights matter: the comparison can fail
        other = weighted_metric_average(_contents([*counts[:-1], counts[-1] * 3 + 1]),
                                        "num-examples")
        assert dict(other) != dict(ours)


def test_a_metric_that_changes_kind_is_an_error() -> None:
    contents = _contents([1, 2])
    contents[1]["metrics"]["loss"] = [1.0]
    with pytest.raises(TypeError, match="list in one reply"):
        weighted_metric_average(contents, "num-examples")
    with pytest.raises(KeyError):
        weighted_metric_average(_contents([1, 2]), "no-such-count")


def test_strategy_uses_it_unless_given_its_own() -> None:
    assert RobustStrategy("mean").train_metrics_aggr_fn is weighted_metric_average
    assert RobustStrategy("mean").evaluate_metrics_aggr_fn is weighted_metric_average

    def own(records: list[RecordDict], key: str) -> MetricRecord:
        return MetricRecord({"n": len(records)})

    strategy = RobustStrategy("mean", train_metrics_aggr_fn=own, evaluate_metrics_aggr_fn=own)
    assert strategy.train_metrics_aggr_fn is own and strategy.evaluate_metrics_aggr_fn is own
    assert FedAvg().train_metrics_aggr_fn is aggregate_metricrecords  # Flower's own default
