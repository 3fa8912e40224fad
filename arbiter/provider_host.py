"""A provider process's job runner: jobs run in the background, status is observable.

The protocol's :class:`verde.protocol.provider.Provider` runs a job synchronously; a service must
accept the job, return at once, and report progress while it trains. Jobs run one at a time, in
submission order, on one worker thread (training already uses every core).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from arbiter.errors import NotFound
from proofs import SignedMessage, VerifyKey
from verde.protocol.graph.admission import admit_job
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.messages import Answer, Query
from verde.protocol.peers.state import StateEntries
from verde.protocol.provider.provider import Provider


@dataclass
class JobProgress:
    state: str  # queued | running | done | failed
    steps_done: int
    steps_total: int
    error: str = ""


class ProviderHost:
    """Owns a domain provider and runs its jobs in the background."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self._lock = threading.Lock()
        self._progress: dict[str, JobProgress] = {}
        self._futures: dict[str, Future[Any]] = {}
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job")

    @property
    def identity(self) -> VerifyKey:
        return self.provider.identity

    def submit(self, spec_json: dict[str, Any]) -> str:
        spec = JobSpec.from_mapping(spec_json)  # validation errors reach the caller at once
        with self._lock:
            if spec.job_id in self._progress:
                return spec.job_id
        # A job that could not be disputed (admit_job), or one from an uploaded state that is
        # missing or does not fit (MissingInitialState, JobSpecError), is refused now, not
        # when it runs.
        admit_job(spec)
        self.provider.accept(spec)
        with self._lock:
            if spec.job_id in self._progress:
                return spec.job_id
            self._progress[spec.job_id] = JobProgress("queued", 0, spec.steps)
            self._futures[spec.job_id] = self._runner.submit(self._run, spec)
        return spec.job_id

    def _run(self, spec: JobSpec) -> None:
        record = self._progress[spec.job_id]
        record.state = "running"

        def progress(step: int, total: int) -> None:
            record.steps_done, record.steps_total = step, total

        self.provider.progress = progress
        try:
            self.provider.run(spec)
        except Exception as exc:
            record.state, record.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        record.state = "done"

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
        return self.provider.put_state(state)

    def fetch_state(self, job_id: str, names: Sequence[str]) -> StateEntries:
        self.result(job_id)  # only finished jobs have a final state
        return self.provider.fetch_state(job_id, names)

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        fut = self._futures.get(job_id)
        if fut is not None:
            fut.result(timeout)

    def close(self) -> None:
        """Stop taking jobs (queued ones are cancelled; a running one finishes)."""
        self._runner.shutdown(wait=False, cancel_futures=True)
