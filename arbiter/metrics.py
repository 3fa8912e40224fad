"""Prometheus metrics of the services (``--metrics HOST:PORT``; needs ``verde[metrics]``).

Nothing here runs unless a service is started with ``--metrics``: ``prometheus_client`` is an
optional extra, imported by :func:`start_metrics` only, and a service started without it
never imports it. The series come from the few places where things happen:

- the engine's and the job host's state changes (:class:`DisputeMetrics`, :class:`JobMetrics`,
  hooked in as :mod:`arbiter.observers`);
- a gRPC server interceptor (:class:`arbiter.interceptors.CallObserver`) for every call's
  latency and status code, named like go-grpc-prometheus's ``grpc_server_*`` series so
  existing dashboards work; RESOURCE_EXHAUSTED replies are the budget refusals;
- SQLAlchemy's cursor events for database latency;
- a collector that counts the shared database's disputes by status and the queue of disputes
  no arbiter holds, read at scrape time (the same on every arbiter of one database).

Names follow Prometheus conventions: ``verde_`` prefix, base units in the name (``_seconds``,
``_bytes``), ``_total`` counters, labels with small fixed value sets (no ids).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

from arbiter.errors import ArbiterError, ArbiterInputError
from arbiter.observers import DisputeObserver, JobObserver
from arbiter.storage.store import Store
from verde.version import PROTOCOL_VERSION, release

log = logging.getLogger("verde.metrics")

#: Latency buckets from a local database query to a slow provider's answer.
SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
           10.0, 30.0, 60.0)
#: Per-job durations (training, commitments): seconds to hours.
JOB_SECONDS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)
STATUSES = ("open", "running", "decided", "failed", "unreachable")
_SQL_VERBS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})


class MetricsUnavailable(ArbiterError):
    """``--metrics`` was given but ``prometheus_client`` is not installed."""


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise MetricsUnavailable("--metrics needs the prometheus_client package: "
                                 "pip install 'verde[metrics]'") from None
    return prometheus_client


def parse_address(address: str, what: str = "--metrics") -> tuple[str, int]:
    """``HOST:PORT`` (port 0: any free port) -> (host, port); ArbiterInputError naming
    ``what``."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ArbiterInputError(f"{what}: expected HOST:PORT (e.g. 127.0.0.1:9100), "
                                f"got {address!r}")
    return host.strip("[]"), int(port)


@dataclass
class Metrics:
    """One process's registry, its series, and the HTTP endpoint serving them."""

    prom: Any
    service: str
    registry: Any = None
    server: Any = None
    address: str = ""
    _families: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.prom
        p.disable_created_metrics()  # no *_created series: most dashboards do not use them
        self.registry = p.CollectorRegistry()
        p.ProcessCollector(registry=self.registry)
        p.PlatformCollector(registry=self.registry)
        info = p.Gauge("verde_build_info", "verde release and protocol version of this process",
                       ["release", "protocol", "service"], registry=self.registry)
        info.labels(release(), str(PROTOCOL_VERSION), self.service).set(1)
        self.calls = p.Counter("grpc_server_handled_total",
                               "gRPC calls completed on the server, by status code",
                               ["grpc_service", "grpc_method", "grpc_code"],
                               registry=self.registry)
        self.call_seconds = p.Histogram("grpc_server_handling_seconds",
                                        "Latency of gRPC calls on the server",
                                        ["grpc_service", "grpc_method"], buckets=SECONDS,
                                        registry=self.registry)
        self.budget_refusals = p.Counter(
            "verde_budget_refusals_total",
            "Requests refused for exceeding a limit or budget (RESOURCE_EXHAUSTED)",
            ["grpc_method"], registry=self.registry)

    # -- the HTTP endpoint --------------------------------------------------------------
    def serve(self, address: str) -> int:
        """Serve ``/metrics`` on ``address`` (HOST:PORT); returns the bound port."""
        host, port = parse_address(address)
        try:
            self.server, _thread = self.prom.start_http_server(port, addr=host,
                                                               registry=self.registry)
        except OSError as exc:
            raise OSError(f"--metrics: cannot listen on {address}: {exc.strerror or exc}"
                          ) from None
        port = int(self.server.server_port)
        self.address = f"{host}:{port}"
        return port

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- gRPC calls -----------------------------------------------------------------------
    def observe_call(self, service: str, method: str, code: str, seconds: float) -> None:
        """The :data:`arbiter.interceptors.ObservedCall` of this registry."""
        self.calls.labels(service, method, code).inc()
        self.call_seconds.labels(service, method).observe(seconds)
        if code == "RESOURCE_EXHAUSTED":
            self.budget_refusals.labels(method).inc()

    # -- the database ---------------------------------------------------------------------
    def instrument_database(self, engine: Engine) -> None:
        """Time every SQL statement (by verb) and count database errors."""
        p = self.prom
        seconds = p.Histogram("verde_db_query_seconds", "Latency of SQL statements",
                              ["operation"], buckets=SECONDS, registry=self.registry)
        errors = p.Counter("verde_db_errors_total", "SQL statements that raised",
                           registry=self.registry)
        local = threading.local()

        def before(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
            local.start = time.perf_counter()

        def after(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
            start = getattr(local, "start", None)
            if start is not None:
                verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
                seconds.labels(verb.lower() if verb in _SQL_VERBS else "other").observe(
                    time.perf_counter() - start)
                local.start = None

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        event.listen(engine, "handle_error", lambda _ctx: errors.inc())

    def watch_store(self, store: Store) -> None:
        """Dispute counts by status and the queue depth, read from the store at scrape time."""
        self.registry.register(_StoreCollector(self.prom, store))

    # -- observers ------------------------------------------------------------------------
    def dispute_observer(self) -> DisputeMetrics:
        return DisputeMetrics(self.prom, self.registry)

    def job_observer(self) -> JobMetrics:
        return JobMetrics(self.prom, self.registry)


def start_metrics(address: str, service: str) -> Metrics:
    """A registry for ``service`` served on ``address``; MetricsUnavailable without the extra."""
    parse_address(address)  # a bad address is reported before anything starts
    metrics = Metrics(_prometheus(), service)
    metrics.serve(address)
    return metrics


class _StoreCollector:
    def __init__(self, prom: Any, store: Store) -> None:
        self.prom = prom
        self.store = store

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        try:
            counts = self.store.dispute_counts()
            waiting = self.store.waiting_count()
        except Exception as exc:  # a scrape must not fail because the database is down
            log.warning("metrics: cannot read dispute counts: %s", exc)
            return
        from prometheus_client.core import GaugeMetricFamily as family
        by_status = family("verde_arbiter_disputes",
                           "Disputes in the shared database by status", labels=["status"])
        for status in STATUSES:
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        yield family("verde_arbiter_queue_depth",
                     "Active disputes that no arbiter holds (waiting for a worker)",
                     value=waiting)


class DisputeMetrics(DisputeObserver):
    """Dispute series of one arbiter process (see the module docstring)."""

    def __init__(self, prom: Any, registry: Any) -> None:
        c, g, h = prom.Counter, prom.Gauge, prom.Histogram
        self.opened_total = c("verde_arbiter_disputes_opened_total",
                              "Disputes opened by clients on this arbiter", registry=registry)
        self.claimed_total = c("verde_arbiter_disputes_claimed_total",
                               "Disputes this process took the lease of", ["resumed"],
                               registry=registry)
        self.events_total = c("verde_arbiter_dispute_events_total",
                              "Answers and timeouts committed, by the phase they answered",
                              ["phase", "kind"], registry=registry)
        self.driving = g("verde_arbiter_disputes_driving",
                         "Disputes this process is driving now, by phase", ["phase"],
                         registry=registry)
        self.round_seconds = h("verde_arbiter_round_duration_seconds",
                               "Time to get every answer of one dispute round", ["phase"],
                               buckets=SECONDS, registry=registry)
        self.finished_total = c("verde_arbiter_disputes_finished_total",
                                "Disputes ended by this process, by outcome", ["outcome"],
                                registry=registry)
        self.verdicts_total = c("verde_arbiter_verdicts_total",
                                "Verdicts by reason (fault, initial_state, recomputed_...)",
                                ["reason"], registry=registry)
        self.released_total = c("verde_arbiter_disputes_released_total",
                                "Disputes handed back while draining", registry=registry)
        self.lost_total = c("verde_arbiter_leases_lost_total",
                            "Disputes another arbiter took over from this one",
                            registry=registry)
        self._phase: dict[str, str] = {}
        self._lock = threading.Lock()

    def _move(self, dispute_id: str, phase: str | None) -> None:
        with self._lock:
            old = self._phase.pop(dispute_id, None)
            if old is not None:
                self.driving.labels(old).dec()
            if phase is not None:
                self._phase[dispute_id] = phase
                self.driving.labels(phase).inc()

    def opened(self, dispute_id: str, job_id: str) -> None:
        self.opened_total.inc()

    def claimed(self, dispute_id: str, job_id: str, phase: str, rounds: int) -> None:
        self.claimed_total.labels("true" if rounds else "false").inc()
        self._move(dispute_id, phase)

    def advanced(self, dispute_id: str, event: Mapping[str, Any], phase_before: str,
                 phase: str, rounds: int) -> None:
        self.events_total.labels(phase_before, str(event.get("type"))).inc()
        if phase not in (phase_before, "done"):  # "done": finished() takes it off the gauge
            self._move(dispute_id, phase)

    def round_done(self, dispute_id: str, phase: str, round_: int, seconds: float) -> None:
        self.round_seconds.labels(phase).observe(seconds)

    def finished(self, dispute_id: str, status: str, verdict: Mapping[str, Any] | None,
                 error: str | None) -> None:
        self._move(dispute_id, None)
        self.finished_total.labels(status).inc()
        if verdict is not None:
            self.verdicts_total.labels(str(verdict.get("reason"))).inc()

    def released(self, dispute_id: str, phase: str, rounds: int) -> None:
        self._move(dispute_id, None)
        self.released_total.inc()

    def lease_lost(self, dispute_id: str) -> None:
        self._move(dispute_id, None)
        self.lost_total.inc()


class JobMetrics(JobObserver):
    """Job series of one provider process (see the module docstring)."""

    def __init__(self, prom: Any, registry: Any) -> None:
        c, g, h = prom.Counter, prom.Gauge, prom.Histogram
        self.accepted_total = c("verde_provider_jobs_accepted_total",
                                "Jobs that passed admission", registry=registry)
        self.refused_total = c("verde_provider_jobs_refused_total",
                               "Jobs refused before running, by reason", ["reason"],
                               registry=registry)
        self.finished_total = c("verde_provider_jobs_finished_total",
                                "Jobs ended, by state (done, failed, cancelled)", ["state"],
                                registry=registry)
        self.jobs = g("verde_provider_jobs", "Jobs queued or running now", ["state"],
                      registry=registry)
        self.steps_total = c("verde_provider_steps_total",
                             "Training steps computed and committed (rate() = steps/s)",
                             registry=registry)
        self.queue_seconds = h("verde_provider_job_queue_seconds",
                               "Time jobs waited in the queue", buckets=JOB_SECONDS,
                               registry=registry)
        self.training_seconds = h("verde_provider_training_seconds",
                                  "Time per job computing steps", buckets=JOB_SECONDS,
                                  registry=registry)
        self.commitment_seconds = h("verde_provider_commitment_seconds",
                                    "Time per job computing state commitments and the "
                                    "Merkle tree over steps", buckets=JOB_SECONDS,
                                    registry=registry)
        self.uploads_total = c("verde_provider_uploads_total", "States uploaded by clients",
                               registry=registry)
        self.upload_bytes_total = c("verde_provider_upload_bytes_total",
                                    "Tensor bytes of uploaded states", registry=registry)
        for state in ("queued", "running"):
            self.jobs.labels(state).set(0)

    def accepted(self, job_id: str, program: str, steps: int) -> None:
        self.accepted_total.inc()
        self.jobs.labels("queued").inc()

    def refused(self, reason: str, detail: str) -> None:
        self.refused_total.labels(reason).inc()

    def started(self, job_id: str, queued_s: float) -> None:
        self.jobs.labels("queued").dec()
        self.jobs.labels("running").inc()
        self.queue_seconds.observe(queued_s)

    def stepped(self, job_id: str, step: int, total: int) -> None:
        self.steps_total.inc()

    def finished(self, job_id: str, state: str, timings: Mapping[str, float],
                 error: str) -> None:
        self.jobs.labels("queued" if state == "cancelled" else "running").dec()
        self.finished_total.labels(state).inc()
        if "step_s" in timings:
            self.training_seconds.observe(timings["step_s"])
        if "commit_s" in timings:
            self.commitment_seconds.observe(timings["commit_s"])

    def uploaded(self, root: str, nbytes: int) -> None:
        self.uploads_total.inc()
        self.upload_bytes_total.inc(nbytes)
