"""A provider process's job runner: jobs run in the background, status is observable.

The protocol's :class:`verde.protocol.provider.Provider` runs a job synchronously; a service must
accept the job, return at once, and report progress while it trains. Jobs run one at a time, in
submission order, on one worker thread (training already uses every core). Every job state
change goes to the host's observers (:mod:`arbiter.observers`: logs and metrics).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from arbiter.client_quotas import ClientQuotas, QuotaLimits
from arbiter.errors import ArbiterError, NotFound
from arbiter.logs import log_event
from arbiter.observers import JobObserver, notify
from arbiter.state_log import JobLog
from proofs import SignedMessage, VerifyKey
from verde.protocol.graph.budget import BudgetExceeded, checkpoint_bytes, estimate_cost
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.messages import Answer, Query
from verde.protocol.peers.state import StateEntries
from verde.protocol.provider.provider import Provider
from verde.protocol.provider.upload_file import UploadEntry

log = logging.getLogger("verde.provider")
#: Checkpoint bytes one job may keep, by default (in memory, or under --checkpoint-dir).
DEFAULT_MAX_CHECKPOINT_BYTES = 64 << 30


@dataclass
class JobProgress:
    state: str  # queued | running | done | failed
    steps_done: int
    steps_total: int
    error: str = ""
    queued_at: float = 0.0


class ProviderStopping(ArbiterError):
    """The provider is draining (SIGTERM) and takes no new jobs or uploads."""


class ProviderHost:
    """Owns a domain provider and runs its jobs in the background."""

    def __init__(self, provider: Provider, observers: Sequence[JobObserver] | None = None,
                 *, quotas: QuotaLimits | None = None,
                 max_checkpoint_bytes: int | None = DEFAULT_MAX_CHECKPOINT_BYTES) -> None:
        self.provider = provider
        #: Bytes of checkpoints one job may keep (its state times its checkpoints).
        self.max_checkpoint_bytes = max_checkpoint_bytes
        #: Per-client quotas of concurrent jobs and total FLOPs (None: not counted).
        self.quotas = (ClientQuotas(quotas, self.job_active, what="jobs",
                                    flags=("--max-client-jobs", "--max-client-flops"))
                       if quotas is not None else None)
        #: Told of every job state change; by default the log lines of arbiter.state_log.
        self.observers: tuple[JobObserver, ...] = (
            tuple(observers) if observers is not None else (JobLog(),))
        self._lock = threading.Lock()
        self._progress: dict[str, JobProgress] = {}
        self._futures: dict[str, Future[Any]] = {}
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job")
        self._stopping = threading.Event()

    @property
    def identity(self) -> VerifyKey:
        return self.provider.identity

    def submit(self, spec_json: dict[str, Any], client: str = "local") -> str:
        """Admit a job for ``client`` and queue it; returns its id.

        Before anything is allocated the job must fit ``client``'s quota (concurrent jobs,
        total FLOPs; ``QuotaExceeded``), the provider's budget (``BudgetExceeded``) and its
        job store, be disputable (``admit_job``) and, when it starts from an uploaded state,
        find that state (``MissingInitialState``, ``JobSpecError``).
        """
        try:
            if self._stopping.is_set():
                raise ProviderStopping("this provider is shutting down and takes no new jobs")
            spec = JobSpec.from_mapping(spec_json)  # validation errors reach the caller now
            with self._lock:
                if spec.job_id in self._progress:
                    return spec.job_id
            self._admit(spec, client)
        except Exception as exc:
            notify(self.observers, "refused", type(exc).__name__, str(exc))
            raise
        with self._lock:
            if spec.job_id in self._progress:
                return spec.job_id
            self._progress[spec.job_id] = JobProgress("queued", 0, spec.steps,
                                                      queued_at=time.monotonic())
            # Before the runner can start it: "accepted" always precedes "running".
            notify(self.observers, "accepted", spec.job_id, spec.program, spec.steps)
            self._futures[spec.job_id] = self._runner.submit(self._run, spec)
        if self.quotas is not None:
            self.quotas.confirm(client, spec.job_id)
        log_event(log, logging.INFO, "client.job",
                  f"job {spec.job_id[:16]} submitted by {client[:16]}",
                  job_id=spec.job_id, client=client)
        return spec.job_id

    def _admit(self, spec: JobSpec, client: str) -> None:
        if self.quotas is not None:
            self.quotas.check_room(client)
        cost = estimate_cost(spec, self.provider.budget)  # refused here, nothing allocated
        checkpoints = checkpoint_bytes(spec, cost)
        if self.max_checkpoint_bytes is not None and checkpoints > self.max_checkpoint_bytes:
            raise BudgetExceeded("checkpoint_bytes", checkpoints, self.max_checkpoint_bytes,
                                 spec.job_id)
        if self.quotas is None:
            self.provider.admit(spec, holding=len(self._progress))
            return
        self.quotas.reserve(client, spec.job_id, cost.total_flops)
        try:
            self.provider.admit(spec, holding=len(self._progress))
        except BaseException:
            self.quotas.cancel(client, spec.job_id, cost.total_flops)
            raise

    def job_active(self, job_id: str) -> bool:
        """Whether ``job_id`` is queued or running (it holds a slot of its client's quota)."""
        record = self._progress.get(job_id)
        return record is not None and record.state in ("queued", "running")

    def _run(self, spec: JobSpec) -> None:
        record = self._progress[spec.job_id]
        record.state = "running"
        notify(self.observers, "started", spec.job_id, time.monotonic() - record.queued_at)

        def progress(step: int, total: int) -> None:
            record.steps_done, record.steps_total = step, total
            notify(self.observers, "stepped", spec.job_id, step, total)

        self.provider.progress = progress
        try:
            done = self.provider.run(spec)
        except Exception as exc:
            record.state, record.error = "failed", f"{type(exc).__name__}: {exc}"
            notify(self.observers, "finished", spec.job_id, "failed", {}, record.error)
            return
        record.state = "done"
        notify(self.observers, "finished", spec.job_id, "done", dict(done.timings), "")

    def status(self, job_id: str) -> JobProgress:
        try:
            return self._progress[job_id]
        except KeyError:
            raise NotFound(f"this provider has no job {job_id}") from None

    def result(self, job_id: str) -> SignedMessage:
        status = self.status(job_id)
        if status.state != "done":
            raise NotFound(f"job {job_id} has no result yet (state: {status.state}"
                           + (f", {status.error}" if status.error else "") + ")")
        return self.provider.result(job_id)

    def answer(self, query: Query) -> Answer:
        self.result(query.job_id)  # only finished jobs answer dispute queries
        return self.provider.answer(query)

    def put_state(self, state: Mapping[str, torch.Tensor]) -> str:
        if self._stopping.is_set():
            raise ProviderStopping("this provider is shutting down and takes no new uploads")
        root = self.provider.put_state(state)
        notify(self.observers, "uploaded", root,
               sum(t.numel() * t.element_size() for t in state.values()))
        return root

    def receive_state(self, entries: Sequence[UploadEntry],
                      data: Iterable[bytes | memoryview]) -> str:
        """An upload arriving as a stream (``Provider.receive_state``: written to disk)."""
        if self._stopping.is_set():
            raise ProviderStopping("this provider is shutting down and takes no new uploads")
        root = self.provider.receive_state(entries, data)
        notify(self.observers, "uploaded", root, sum(e.nbytes for e in entries))
        return root

    def fetch_state(self, job_id: str, names: Sequence[str]) -> StateEntries:
        self.result(job_id)  # only finished jobs have a final state
        return self.provider.fetch_state(job_id, names)

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        fut = self._futures.get(job_id)
        if fut is not None:
            fut.result(timeout)

    def drain(self, timeout_s: float) -> bool:
        """Stop taking jobs, cancel queued ones, give the running one ``timeout_s`` to finish.

        Dispute answers keep being served meanwhile. Returns whether the running job (if any)
        finished in time.
        """
        self._stopping.set()
        with self._lock:
            futures = dict(self._futures)
        running = []
        for job_id, fut in futures.items():
            if fut.cancel():
                record = self._progress[job_id]
                record.state, record.error = "failed", "cancelled: the provider stopped"
                notify(self.observers, "finished", job_id, "cancelled", {}, record.error)
            elif not fut.done():
                running.append(fut)
        end = time.monotonic() + timeout_s
        for fut in running:
            try:
                fut.result(max(0.0, end - time.monotonic()))
            except TimeoutError:
                return False
        return True

    def close(self) -> None:
        """Stop taking jobs (queued ones are cancelled; a running one finishes)."""
        self._stopping.set()
        self._runner.shutdown(wait=False, cancel_futures=True)
