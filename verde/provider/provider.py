"""An honest provider: runs a job, commits to every step, and answers dispute queries.

The provider records the state digest (``proofs.StateCommitment`` root over parameters,
optimizer state and RNG state) after every step, a full checkpoint every
``checkpoint_interval`` steps, and signs a result naming the Merkle root over the step digests
and the final digest (Verde, Arun et al. 2025, phase 1). For phase 2 it replays step ``s`` from
the nearest checkpoint under tracing and commits to a Merkle tree over the step's graph nodes;
it serves child hashes, leaves, state tensors, node outputs and data samples, each with its
Merkle proof, every answer signed for its (job, dispute, round, kind).

``verde.faults.CheatingProvider`` subclasses this and overrides the hooks ``compute_step``,
``trace``, ``build_payload`` and ``sign_answer``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from proofs import MerkleTree, SignedMessage, SigningKey, VerifyKey, sign_message
from proofs.state import StateCommitment
from verde.jobs.admission import admit_job
from verde.jobs.context import JobContext
from verde.jobs.spec import JobSpec
from verde.peers.messages import Answer, Query, TensorBlob
from verde.provider.answers import PAYLOAD_BUILDERS
from verde.provider.checkpoints import CheckpointStore
from verde.provider.errors import UnknownQueryError
from verde.provider.execution import StepGraph, run_step, trace_step
from verde.provider.result import result_context, result_payload

Progress = Callable[[int, int], None]


@dataclass
class JobRecord:
    """What a provider keeps about one job."""

    spec: JobSpec
    ctx: JobContext
    step_roots: list[bytes]
    tree: MerkleTree
    checkpoints: CheckpointStore
    result: SignedMessage
    timings: dict[str, float] = field(default_factory=dict)
    graphs: dict[int, StepGraph] = field(default_factory=dict)
    states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    commitments: dict[int, StateCommitment] = field(default_factory=dict)


class Provider:
    """An honest provider (see the module docstring)."""

    def __init__(
        self,
        key: SigningKey,
        name: str = "",
        checkpoint_dir: str | Path | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.key = key
        self.name = name or key.public_key.hex()[:8]
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.progress = progress
        self.jobs: dict[str, JobRecord] = {}

    @property
    def identity(self) -> VerifyKey:
        return self.key.public_key

    # --- running a job --------------------------------------------------------------------

    def submit(self, spec: Mapping[str, Any] | JobSpec) -> str:
        """Accept a job (refusing one that could not be disputed, ``admit_job``) and run it."""
        job = spec if isinstance(spec, JobSpec) else JobSpec.from_mapping(spec)
        if job.job_id not in self.jobs:
            admit_job(job)
            self.run(job)
        return job.job_id

    def run(self, spec: JobSpec) -> JobRecord:
        """Run every step, committing as it goes; returns the record with the signed result."""
        ctx = JobContext.from_spec(spec)
        store = CheckpointStore(
            self.checkpoint_dir / spec.job_id[:16] if self.checkpoint_dir else None
        )
        state = self.initial_state(ctx)
        commit_s = 0.0
        step_s = 0.0
        t0 = time.perf_counter()
        roots = [StateCommitment.from_tensors(state).root]
        commit_s += time.perf_counter() - t0
        store.save(0, state)
        for step in range(1, spec.steps + 1):
            t0 = time.perf_counter()
            state = self.compute_step(ctx, state, step)
            t1 = time.perf_counter()
            roots.append(StateCommitment.from_tensors(state).root)
            t2 = time.perf_counter()
            step_s += t1 - t0
            commit_s += t2 - t1
            if step % spec.checkpoint_interval == 0 or step == spec.steps:
                store.save(step, state)
            if self.progress is not None:
                self.progress(step, spec.steps)
        t0 = time.perf_counter()
        tree = MerkleTree(roots)
        commit_s += time.perf_counter() - t0
        result = self.sign_result(spec, tree, roots)
        record = JobRecord(spec, ctx, roots, tree, store, result,
                           {"step_s": step_s, "commit_s": commit_s})  # fmt: skip
        record.states[spec.steps] = state
        self.jobs[spec.job_id] = record
        return record

    def initial_state(self, ctx: JobContext) -> dict[str, torch.Tensor]:
        """State 0 (hook: cheaters override this)."""
        return ctx.initial_state()

    def compute_step(
        self, ctx: JobContext, state: Mapping[str, torch.Tensor], step: int
    ) -> dict[str, torch.Tensor]:
        """State ``step`` from state ``step - 1`` (hook: cheaters override this)."""
        return run_step(ctx, state, step)

    def trace(self, ctx: JobContext, state: Mapping[str, torch.Tensor], step: int) -> StepGraph:
        """The traced replay of ``step`` (hook: cheaters override this)."""
        return trace_step(ctx, state, step)

    def sign_result(self, spec: JobSpec, tree: MerkleTree, roots: list[bytes]) -> SignedMessage:
        payload = result_payload(spec.job_id, spec.steps, tree.root, roots[-1],
                                 tree.proof(spec.steps))  # fmt: skip
        return sign_message(self.key, result_context(spec.job_id), payload)

    def result(self, job_id: str) -> SignedMessage:
        return self._record(job_id).result

    def _record(self, job_id: str) -> JobRecord:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise UnknownQueryError(f"{self.name} has not run job {job_id}") from None

    # --- replay ---------------------------------------------------------------------------

    def state_at(self, record: JobRecord, step: int) -> dict[str, torch.Tensor]:
        """State ``step``, replayed from the nearest checkpoint (the last one is cached)."""
        if step in record.states:
            return record.states[step]
        start = record.checkpoints.nearest(step)
        state = record.checkpoints.load(start)
        for s in range(start + 1, step + 1):
            state = self.compute_step(record.ctx, state, s)
        record.states = {step: state, record.spec.steps: record.states.get(record.spec.steps)}
        record.states = {k: v for k, v in record.states.items() if v is not None}
        return state

    def commitment_at(self, record: JobRecord, step: int) -> StateCommitment:
        if step not in record.commitments:
            record.commitments = {step: StateCommitment.from_tensors(self.state_at(record, step))}
        return record.commitments[step]

    def graph(self, record: JobRecord, step: int) -> StepGraph:
        if step not in record.graphs:
            if not 1 <= step <= record.spec.steps:
                raise UnknownQueryError(f"no step {step} in a job of {record.spec.steps} steps")
            record.graphs = {step: self.trace(record.ctx, self.state_at(record, step - 1), step)}
        return record.graphs[step]

    # --- answering ------------------------------------------------------------------------

    def answer(self, query: Query) -> Answer:
        """Answer one dispute query with a signed payload (and tensors where asked)."""
        record = self._record(query.job_id)
        payload, blobs = self.build_payload(record, query)
        return Answer(self.sign_answer(query, payload), blobs)

    def build_payload(
        self, record: JobRecord, query: Query
    ) -> tuple[dict[str, Any], dict[str, TensorBlob]]:
        builder = PAYLOAD_BUILDERS.get(query.kind)
        if builder is None:
            raise UnknownQueryError(f"unknown query kind {query.kind!r}")
        return builder(self, record, query.params)

    def sign_answer(self, query: Query, payload: dict[str, Any]) -> SignedMessage:
        return sign_message(self.key, query.context, payload)
