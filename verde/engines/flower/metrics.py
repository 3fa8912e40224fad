"""Client metrics averaged by example count: Flower's default aggregation, read once per reply.

Why not call flwr's ``aggregate_metricrecords`` (FedAvg's default, and RobustStrategy's until
now): it reads ``RecordDict.metric_records`` twice per reply, and that property builds a synced
copy of the whole RecordDict with a type check per record and per item, 100-200 µs an access.
At 100 clients that was about a third of RobustStrategy's time per round
(``bench/flower_bench.py``). :func:`weighted_metric_average` gives the same MetricRecord,
value for value (the same float operations in the same order: weights divided by their total,
each client's values times its weight, added up client by client), from each reply's records
collected once.
"""

from __future__ import annotations

try:
    from flwr.app import MetricRecord, RecordDict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("verde.engines.flower needs Flower: pip install 'verde[flower]'"
                      ) from exc

MetricValue = int | float | list[int] | list[float]


def weighted_metric_average(records: list[RecordDict], weighting_metric_name: str) -> MetricRecord:
    """The example-count-weighted average of every metric the clients sent (the weighting
    metric itself left out), as Flower's FedAvg computes it; a list metric is averaged
    element by element. Each reply's first MetricRecord holds its weight."""
    per_client = [[r for r in content.values() if isinstance(r, MetricRecord)]
                  for content in records]
    weights = [float(metrics[0][weighting_metric_name]) for metrics in per_client]  # type: ignore[arg-type]
    total = sum(weights)
    factors = [w / total for w in weights]
    sums: dict[str, MetricValue] = {}
    for metrics, factor in zip(per_client, factors, strict=True):
        for record in metrics:
            for key, value in record.items():
                if key != weighting_metric_name:
                    sums[key] = _add_weighted(sums.get(key), value, factor)
    return MetricRecord(sums)


def _add_weighted(current: MetricValue | None, value: MetricValue, factor: float) -> MetricValue:
    if isinstance(value, list):
        if current is None:
            return [v * factor for v in value]
        if not isinstance(current, list):
            raise TypeError("a metric is a list in one reply and a number in another")
        return [c + v * factor for c, v in zip(current, value, strict=True)]
    if current is None:
        return value * factor
    if isinstance(current, list):
        raise TypeError("a metric is a list in one reply and a number in another")
    return current + value * factor
