"""RobustStrategy: Flower's FedAvg with a verde rule in place of the average of the weights.

Why updates and not weights: robust rules compare the clients' contributions, and what a
client contributes is its update u_i = w_i - w (its reply minus the global model it was
sent). Weights share the large common part w, which hides the differences every rule looks
at (and makes norm-based rules, clipping, FLTrust's cosine meaningless). The new global model
is w + server_lr * rule(u_1..u_n); with the rule ``mean`` weighted by example counts and
server_lr = 1 this is exactly FedAvg (Flower's own strategies aggregate full weights).

Replies a rule could not use (missing arrays, other keys/shapes/dtypes, a missing, negative or
non-finite example count) are rejected and counted as faulty (f shrinks by their number),
where FedAvg would fail the whole round. A non-finite aggregate is not applied. Arrays that
are not floating point (e.g. BatchNorm's step counters) are not aggregated: the global model's
are kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from logging import INFO, WARNING
from typing import Any, NamedTuple, TypeVar

import numpy as np

from verde.engines.flower.metrics import weighted_metric_average
from verde.engines.flower.records import (
    Layout,
    RecordLayoutError,
    flatten_arrays,
    floating_parts,
    unflatten_arrays,
    write_differences,
)
from verde.engines.flower.report import AggregationReport, build_report
from verde.robust import (
    Aggregator,
    BreakdownConditionError,
    PreAggregator,
    compose,
    make_aggregator,
    make_pre_aggregator,
)

try:
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.serverapp import Grid
    from flwr.serverapp.strategy import FedAvg
    from flwr.supercore import log
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("verde.engines.flower needs Flower: pip install 'verde[flower]'"
                      ) from exc

ReferenceFn = Callable[[int, ArrayRecord], ArrayRecord]
RecordT = TypeVar("RecordT", ArrayRecord, MetricRecord)

#: Bytes of one column chunk of the update matrix for coordinate-wise rules: it and its
#: sorted copy stay in cache between writing and aggregating (measured at 10 and 100 clients).
CHUNK_BYTES = 2 << 20


class UsableReply(NamedTuple):
    """A reply the rule aggregates: its node, example count, content, and the floating
    arrays of its model as flat views (the pieces of its vector)."""

    node: int
    count: float
    content: RecordDict
    parts: list[np.ndarray]


def column_chunk(rows: int, itemsize: int) -> int:
    """Columns per chunk of a (rows, d) matrix: about ``CHUNK_BYTES``, a multiple of 1024."""
    return max(1024, CHUNK_BYTES // max(rows * itemsize, 1) // 1024 * 1024)


class RobustStrategy(FedAvg):
    """FedAvg whose aggregation step is a verde rule over client updates.

    ``rule``: an aggregator (``verde.robust.Krum(f=3)``, ``compose(NNM(3), Krum(3))``) or a
    registered name (``"trimmed_mean"``), built with ``f``, ``rule_params`` and the
    pre-aggregators ``pre`` (instances or names, applied in order). ``weighted``: weight by the
    clients' example counts (the ``weighted_by_key`` metric) when the rule supports weights
    (mean and the subset-averaging rules, behind pre-aggregators that keep one vector per
    client). ``reference_fn(round, global_arrays)`` gives the server's own trained model for
    rules that need a reference (FLTrust). Any other keyword goes to ``FedAvg``.

    Example counts are the clients' own claims: a Byzantine client can inflate its count, and
    with ``weighted=True`` a rule that keeps it gives it that weight. Rules that select a subset
    first (Multi-Krum, MDA, ...) only weight the clients they kept.

    Memory: the (clients, parameters) matrix of updates is kept from one round to the next
    while its shape stays the same (allocating it afresh costs its page faults every round).
    """

    def __init__(self, rule: Aggregator | str = "median", f: int = 0, *,
                 pre: Sequence[PreAggregator | str] = (), rule_params: dict[str, Any] | None
                 = None, weighted: bool = True, server_lr: float = 1.0,
                 reference_fn: ReferenceFn | None = None, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        # FedAvg's default client-metric averages, computed without flwr's per-access copies
        # of every reply (verde.engines.flower.metrics: the same values).
        if fedavg.get("train_metrics_aggr_fn") is None:
            self.train_metrics_aggr_fn = weighted_metric_average
        if fedavg.get("evaluate_metrics_aggr_fn") is None:
            self.evaluate_metrics_aggr_fn = weighted_metric_average
        if not (isinstance(server_lr, int | float) and math.isfinite(server_lr)
                and server_lr > 0):
            raise ValueError(f"RobustStrategy: server_lr must be a positive number, got "
                             f"{server_lr!r}")
        agg = make_aggregator(rule, f=f, **(rule_params or {})) if isinstance(rule, str) \
            else rule
        if not isinstance(agg, Aggregator):
            raise ValueError(f"RobustStrategy: rule must be a verde aggregator or its name, got "
                             f"{type(rule).__name__}")
        stages = [make_pre_aggregator(p, f=f) if isinstance(p, str) else p for p in pre]
        self.rule: Aggregator = compose(*stages, agg) if stages else agg
        if self.rule.needs_reference and reference_fn is None:
            raise ValueError(f"RobustStrategy: {self.rule!r} needs the server's reference "
                             "update; pass reference_fn=(round, arrays) -> trained arrays")
        self.f = agg.f
        self.weighted = weighted
        self.server_lr = float(server_lr)
        self.reference_fn = reference_fn
        self.last_report: AggregationReport | None = None
        self._global: ArrayRecord | None = None
        self._updates: np.ndarray | None = None

    def summary(self) -> None:
        log(INFO, "\t├──> verde rule: %r on client updates (f=%d, weighted=%s, server_lr=%g)",
            self.rule, self.f, self.weighted, self.server_lr)
        super().summary()

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.expect_updates_of(arrays)
        return super().configure_train(server_round, arrays, config, grid)

    def expect_updates_of(self, arrays: ArrayRecord) -> None:
        """Set the global model the next replies are updates of (``configure_train`` does it;
        call it yourself when you drive ``aggregate_train`` outside ``Strategy.start``)."""
        self._global = arrays

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Aggregate the replies' updates with the rule; see the class docstring."""
        if self._global is None:
            raise RuntimeError("RobustStrategy.aggregate_train ran before configure_train: "
                               "the updates need the global model that was sent")
        base, base_other, layout = flatten_arrays(self._global)
        accepted, rejected = self._accept(list(replies), layout)
        if not accepted:
            log(WARNING, "verde: no usable reply in round %d (%d rejected)", server_round,
                len(rejected))
            return None, None
        ids = [reply.node for reply in accepted]
        updates = self._update_buffer((len(accepted), base.size), layout.vector_dtype)
        counts = np.array([reply.count for reply in accepted], dtype=np.float64)
        try:
            aggregate, weighted = self._run_rule(server_round, updates,
                                                 [reply.parts for reply in accepted], counts,
                                                 n_rejected=len(rejected), layout=layout,
                                                 base=base)
        except BreakdownConditionError as exc:
            log(WARNING, "verde: round %d not aggregated, too few usable replies: %s",
                server_round, exc)
            return None, None
        applied = bool(np.isfinite(aggregate).all())
        new_vec = base + self.server_lr * aggregate if applied else base
        report = build_report(ids, updates, aggregate if applied else np.zeros_like(base),
                              counts, weighted=weighted, rejected=rejected, applied=applied)
        self.last_report = report
        kept = [reply.content for reply in accepted if reply.node not in report.excluded]
        metrics = self._client_metrics(kept)
        for key, value in report.metrics().items():
            metrics[key] = value
        log(INFO, "verde: %d excluded, %d down-weighted, %d rejected of %d replies",
            len(report.excluded), len(report.downweighted), len(rejected),
            len(accepted) + len(rejected))
        return unflatten_arrays(new_vec.astype(layout.vector_dtype, copy=False), base_other,
                                layout), metrics

    def _update_buffer(self, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        """The (accepted replies, parameters) matrix their updates are written to, reused while
        its shape and dtype stay the same: a fresh one each round costs its page faults again
        (about 10% of a 100-client round on a 100k-parameter model)."""
        buf = self._updates
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._updates = np.empty(shape, dtype=dtype)
        return buf

    def _accept(self, replies: list[Message], layout: Layout
                ) -> tuple[list[UsableReply], dict[int, str]]:
        """The usable replies, in order, and the rejected ones with the reason."""
        accepted: list[UsableReply] = []
        rejected: dict[int, str] = {}
        for msg in replies:
            node = int(msg.metadata.src_node_id)
            if msg.has_error():
                rejected[node] = f"error reply: {msg.error.reason}"
                continue
            content = msg.content
            try:
                records = _records_of(content, ArrayRecord)
                if len(records) != 1:
                    raise RecordLayoutError(f"{len(records)} ArrayRecords, expected one")
                count = self._count(content)
                parts = floating_parts(records[0], layout)
            except (RecordLayoutError, ValueError, TypeError) as exc:
                rejected[node] = str(exc)
                continue
            accepted.append(UsableReply(node, count, content, parts))
        return accepted, rejected

    def _count(self, content: RecordDict) -> float:
        if not self.weighted:
            return 1.0
        metrics = _records_of(content, MetricRecord)
        if len(metrics) != 1 or self.weighted_by_key not in metrics[0]:
            raise ValueError(f"no {self.weighted_by_key!r} in a single MetricRecord")
        value = metrics[0][self.weighted_by_key]
        if isinstance(value, list) or not math.isfinite(float(value)) or float(value) < 0:
            raise ValueError(f"{self.weighted_by_key!r} must be a finite count >= 0, got "
                             f"{value!r}")
        return float(value)

    def _run_rule(self, server_round: int, updates: np.ndarray,
                  parts: list[list[np.ndarray]], counts: np.ndarray, *, n_rejected: int,
                  layout: Layout, base: np.ndarray) -> tuple[np.ndarray, bool]:
        """(aggregate of the updates, whether weighted), writing the updates (``parts`` minus
        ``base``) to ``updates`` on the way.

        A coordinate-wise rule gives each coordinate from that coordinate's values alone, so it
        runs on column chunks, each aggregated while its freshly written updates are still in
        cache (at 100 clients this saves a pass over the whole matrix through memory).
        """
        kwargs: dict[str, Any] = {}
        weighted = self.weighted and self.rule.supports_weights and counts.sum() > 0
        if weighted:
            kwargs["weights"] = counts
        if self.rule.needs_reference and self.reference_fn is not None \
                and self._global is not None:
            ref, _, _ = flatten_arrays(self.reference_fn(server_round, self._global), layout)
            kwargs["reference"] = ref - base
        # A rejected reply is certainly faulty: the rule need tolerate that many fewer.
        rule = self.rule
        saved = _set_f(rule, max(self.f - n_rejected, 0))
        d = base.size
        step = column_chunk(len(parts), updates.itemsize) if rule.coordinatewise else max(d, 1)
        out = np.empty(d, dtype=updates.dtype)
        try:
            with np.errstate(all="ignore"):
                for a in range(0, max(d, 1), step):
                    b = min(a + step, d)
                    write_differences(parts, base, updates, a, b)
                    out[a:b] = np.asarray(rule(updates[:, a:b], **kwargs), dtype=out.dtype)
        finally:
            _set_f(rule, saved)
        return out, weighted

    def _client_metrics(self, kept: list[RecordDict]) -> MetricRecord:
        if not kept:
            return MetricRecord()
        try:
            return self.train_metrics_aggr_fn(kept, self.weighted_by_key)
        except Exception as exc:  # a Byzantine client's odd metrics must not fail the round
            log(WARNING, "verde: client metrics not aggregated: %s", exc)
            return MetricRecord()


def _records_of(content: RecordDict, kind: type[RecordT]) -> list[RecordT]:
    """The records of one kind in a reply, in order (``content.array_records`` and its kin
    build and write back a synced copy of the whole RecordDict on every access)."""
    return [record for record in content.values() if isinstance(record, kind)]


def _set_f(rule: Aggregator, f: int) -> int:
    """Set f on a rule and the stages of a composition; returns the old value."""
    old = rule.f
    rule.f = f
    for stage in getattr(rule, "pre", ()):
        stage.f = f
    inner = getattr(rule, "aggregator", None)
    if inner is not None:
        inner.f = f
    return old
