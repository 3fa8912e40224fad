"""An honest provider: runs a job, commits to every step, and answers dispute queries.

The provider records the state digest (``proofs.StateCommitment`` root over parameters,
optimizer state and RNG state) after every step, a full checkpoint every
``checkpoint_interval`` steps, and signs a result naming the Merkle root over the step digests
and the final digest (Verde, Arun et al. 2025, phase 1). For phase 2 it replays step ``s`` from
the nearest checkpoint under tracing and commits to a Merkle tree over the step's graph nodes;
it serves child hashes, leaves, state tensors, node outputs and data samples, each with its
Merkle proof, every answer signed for its (job, dispute, round, kind).

A job may start from an explicit state 0 named by its root (``JobSpec.init``), or from
uploaded parameters (``init.params``: the provider zero-fills the optimizer slots,
``verde.protocol.jobs.initial``): the client uploads it first (``put_state``, kept in a
bounded ``StateStore``), and ``accept`` refuses the
job at submission when that state is missing or does not fit the job. ``fetch_state`` serves
entries of a job's final state with their proofs against the root the signed result names
(``verde.protocol.peers.state``).

A provider started with ``workers = W`` computes the partitions of a training step whose job
sets ``partitions`` on W worker processes (``verde.protocol.provider.workers``), and on the
``remote_workers`` (workers on other machines, over authenticated connections), with the bits
of one process; everything else, dispute answers included, runs here as before.

``verde.protocol.faults.CheatingProvider`` subclasses this and overrides the hooks
``initial_state``, ``compute_step``, ``trace``, ``build_payload`` and ``sign_answer``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from proofs import MerkleTree, SignedMessage, SigningKey, VerifyKey, sign_message
from proofs.state import StateCommitment
from repops.dispatch.encoding import RefKey
from verde.protocol.graph.admission import admit_job
from verde.protocol.graph.budget import Budget, BudgetExceeded, estimate_cost
from verde.protocol.graph.execution import StepGraph, run_step, trace_step
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.initial import state_from_upload
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.jobs.uploaded_datasets import (
    is_dataset_upload,
    put_dataset_arrays,
    put_dataset_upload,
)
from verde.protocol.peers.errors import MalformedMessage
from verde.protocol.peers.messages import Answer, Query, TensorBlob
from verde.protocol.peers.payloads import AnswerPayload, parse_query
from verde.protocol.peers.result import result_context, result_payload
from verde.protocol.peers.state import StateEntries, state_entries
from verde.protocol.provider.answers import build_answer
from verde.protocol.provider.checkpoints import CheckpointStore
from verde.protocol.provider.errors import MissingInitialState, UnknownQueryError
from verde.protocol.provider.generation_engine import (
    decode_batches,
    generation_states,
    parameters_of,
)
from verde.protocol.provider.record import JobRecord
from verde.protocol.provider.recorder import StateRecorder
from verde.protocol.provider.upload_file import UploadEntry
from verde.protocol.provider.uploads import StateStore
from verde.protocol.provider.workers import LinkOpener, PartitionWorkers, check_worker_count

Progress = Callable[[int, int], None]
#: Jobs a provider holds by default (each with its commitments and checkpoints).
DEFAULT_MAX_JOBS = 256
#: States under 64 MiB: replaying a step keeps all its node outputs (cheaper than a second replay).
DEFAULT_KEEP_VALUES_BELOW = 64 << 20


class Provider:
    """An honest provider (see the module docstring)."""

    def __init__(
        self,
        key: SigningKey,
        name: str = "",
        checkpoint_dir: str | Path | None = None,
        progress: Progress | None = None,
        uploads: StateStore | None = None,
        *,
        keep_values_below: int = DEFAULT_KEEP_VALUES_BELOW,
        budget: Budget | None = None,
        max_jobs: int = DEFAULT_MAX_JOBS,
        workers: int = 1,
        remote_workers: Sequence[LinkOpener] = (),
        generate_batch: int = 8,
        kv_cache: bool = True,
    ) -> None:
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise ValueError(f"max_jobs must be a positive int, got {max_jobs!r}")
        self.key = key
        #: Limits a job must fit before anything is allocated (``verde.protocol.graph.budget``).
        self.budget = budget or Budget()
        #: Jobs this provider holds (to answer disputes about them); more are refused.
        self.max_jobs = max_jobs
        #: Processes computing the partitions of a training step (``JobSpec.partitions``);
        #: 1 computes everything here. Started on first use, stopped by :meth:`close`.
        self.workers = check_worker_count(workers)
        #: Workers on other machines computing partitions too (opened on first use).
        self.remote_workers = tuple(remote_workers)
        if self.remote_workers:  # the pool's size: the local processes and these
            check_worker_count(len(self.remote_workers) + (self.workers if self.workers > 1
                                                           else 0))
        self._partition_workers: PartitionWorkers | None = None
        if isinstance(generate_batch, bool) or not isinstance(generate_batch, int) or (
                generate_batch < 1):
            raise ValueError(f"generate_batch must be a positive int, got {generate_batch!r}")
        #: Generate jobs: prompts decoded at once, and whether Hugging Face models reuse a
        #: key/value cache (``verde.protocol.provider.generation_engine``; same commitments).
        self.generate_batch = generate_batch
        self.kv_cache = bool(kv_cache)
        #: A replayed step whose state is smaller than this (bytes) keeps every node output at
        #: once; a larger one keeps only digests and replays again for the one node disputed.
        self.keep_values_below = keep_values_below
        self.name = name or key.public_key.hex()[:8]
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.progress = progress
        self.jobs: dict[str, JobRecord] = {}
        self.uploads = uploads if uploads is not None else StateStore()
        # Initial states of accepted jobs, pinned until their run ends (no eviction race).
        self._accepted: dict[str, dict[str, torch.Tensor]] = {}

    @property
    def identity(self) -> VerifyKey:
        return self.key.public_key

    # --- running a job --------------------------------------------------------------------

    def submit(self, spec: Mapping[str, Any] | JobSpec) -> str:
        """Admit a job (:meth:`admit`) and run it."""
        job = spec if isinstance(spec, JobSpec) else JobSpec.from_mapping(spec)
        if job.job_id not in self.jobs:
            self.admit(job)
            self.run(job)
        return job.job_id

    def admit(self, job: JobSpec, *, holding: int | None = None) -> None:
        """Refuse, before anything is allocated, a job that would overflow this provider's job
        store (``holding`` jobs, default those it ran) or break its budget (``BudgetExceeded``),
        that could not be disputed (``admit_job``), or whose uploaded state 0 is missing or
        does not fit (:meth:`accept`)."""
        held = len(self.jobs) if holding is None else holding
        if held >= self.max_jobs:
            raise BudgetExceeded("jobs held", held + 1, self.max_jobs, job.job_id)
        estimate_cost(job, self.budget)
        admit_job(job)
        self.accept(job)

    # --- states from and to the client ----------------------------------------------------

    def put_state(self, state: Mapping[str, torch.Tensor]) -> str:
        """Keep a detached copy of ``state`` for jobs that start from it; return its root hex.

        The store is bounded (``StateStore``: 64 states, 4 GiB by default, least recently
        used evicted first); upload shortly before submitting the job that needs it.
        A state whose entries are all ``dataset/<field>`` is a dataset
        (``verde.protocol.jobs.uploaded_datasets``): it is kept under its sample root for the
        jobs that name it, and its state root is returned like any upload's.
        """
        if is_dataset_upload(state):
            put_dataset_upload(state)
            return StateCommitment.from_tensors(dict(state)).root.hex()
        return self.uploads.put(state)

    def receive_state(self, entries: Sequence[UploadEntry],
                      data: Iterable[bytes | memoryview]) -> str:
        """:meth:`put_state` for an upload arriving as a stream: ``entries`` announce its
        tensors, ``data`` carries their bytes in pieces. Written to disk as it arrives, never
        held whole in memory (``StateStore.receive``); a dataset is then kept in this process's
        dataset store as arrays mapped from its file (whose name is removed at once: the
        mapping keeps the bytes until the dataset is evicted)."""
        upload = self.uploads.receive(entries, data)
        if not is_dataset_upload(dict.fromkeys(upload.names)):
            return self.uploads.keep(upload)
        try:
            put_dataset_arrays(upload.arrays())
        finally:
            upload.delete()
        return upload.root

    def accept(self, job: JobSpec) -> None:
        """Refuse, before running, a job whose uploaded state 0 is missing or does not fit.

        Raises ``MissingInitialState`` (not uploaded) or ``JobSpecError`` (names, shapes,
        dtypes or root differ from the job's); on success pins the state for the job's run.
        """
        if job.init_root is None:
            return
        ctx = JobContext.from_spec(job)
        self._accepted[job.job_id] = self.uploaded_initial_state(ctx)

    def uploaded_initial_state(self, ctx: JobContext) -> dict[str, torch.Tensor]:
        """The uploaded state 0 of an ``init`` job, checked against the job."""
        job_id, root = ctx.spec.job_id, ctx.initial_state_root().hex()
        pinned = self._accepted.get(job_id)
        if pinned is not None:  # checked when the job was accepted
            return dict(pinned)
        params_root = ctx.spec.init.get("params")
        if params_root is not None:
            upload = self.uploads.get(params_root)
            if upload is None:
                raise MissingInitialState(f"job {job_id}: starts from the parameters "
                                          f"{params_root}, which were not uploaded to this "
                                          "provider")
            state = state_from_upload(ctx, upload)
        else:
            stored = self.uploads.get(root)
            if stored is None:
                raise MissingInitialState(f"job {job_id}: starts from state {root}, which was "
                                          "not uploaded to this provider")
            state = stored
        ctx.check_initial_state(state)
        return dict(state)

    def fetch_state(self, job_id: str, names: Sequence[str]) -> StateEntries:
        """Entries ``names`` of the job's final state, with digests and proofs against its root.

        The root is the final state digest of the signed result, so the client checks every
        tensor with ``verde.protocol.peers.state.verify_state_entries``.
        """
        record = self._record(job_id)
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            raise UnknownQueryError(f"job {job_id}: fetch_state needs a non-empty list of "
                                    f"entry names, got {names!r}")
        asked = list(names)
        if len(set(asked)) != len(asked) or not all(isinstance(n, str) for n in asked):
            raise UnknownQueryError(f"job {job_id}: entry names must be distinct strings, "
                                    f"got {asked}")
        step = record.spec.steps
        state = self.state_at(record, step)
        unknown = [n for n in asked if n not in state]
        if unknown:
            raise UnknownQueryError(f"job {job_id}: the final state has no entries {unknown} "
                                    f"(it has {sorted(state)})")
        return state_entries(job_id, step, state, self.commitment_at(record, step), asked)

    # --- running a job (continued) --------------------------------------------------------

    def run(self, spec: JobSpec) -> JobRecord:
        """Run every step, committing as it goes; returns the record with the signed result."""
        try:
            return self._run(spec)
        finally:
            self._accepted.pop(spec.job_id, None)

    def _run(self, spec: JobSpec) -> JobRecord:
        ctx = JobContext.from_spec(spec)
        store = CheckpointStore(
            self.checkpoint_dir / spec.job_id[:16] if self.checkpoint_dir else None
        )
        state = self.initial_state(ctx)
        step_s = 0.0
        with StateRecorder(store) as recorder:
            recorder.record(0, state, checkpoint=True)
            states = self.step_states(ctx, state)
            for step in range(1, spec.steps + 1):
                t0 = time.perf_counter()
                got, state = next(states)
                if got != step:
                    raise RuntimeError(f"step states out of order: {got} for {step}")
                step_s += time.perf_counter() - t0
                checkpoint = step % spec.checkpoint_interval == 0 or step == spec.steps
                recorder.record(step, state, checkpoint=checkpoint)
                if self.progress is not None:
                    self.progress(step, spec.steps)
            commitment = recorder.finish()
        t0 = time.perf_counter()
        roots = recorder.roots
        tree = MerkleTree(roots)
        commit_s = recorder.wait_s + time.perf_counter() - t0
        result = self.sign_result(spec, tree, roots)
        record = JobRecord(spec, ctx, roots, tree, store, result,
                           {"step_s": step_s, "commit_s": commit_s})  # fmt: skip
        record.states[spec.steps] = state
        record.commitments[spec.steps] = commitment  # served by fetch_state, not recomputed
        self.jobs[spec.job_id] = record
        return record

    def initial_state(self, ctx: JobContext) -> dict[str, torch.Tensor]:
        """State 0: the uploaded one for an ``init`` job (hook: cheaters override this)."""
        if ctx.spec.init_root is not None:
            return self.uploaded_initial_state(ctx)
        return ctx.initial_state()

    def step_states(self, ctx: JobContext, state: Mapping[str, torch.Tensor],
                    ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """(step, state) for every step of the job from state 0, in order: step by step
        (:meth:`compute_step`), or for generate jobs through the batched, cached decoder whose
        states are the written steps' (``generation_engine``; under repops only: vendor
        kernels promise nothing across batch sizes, so a ``"torch"`` job runs step by step)."""
        if ctx.spec.kind == "generate" and ctx.spec.backend == "repops":
            decoded = decode_batches(ctx, parameters_of(state), batch_size=self.generate_batch,
                                     use_cache=self.kv_cache)
            yield from generation_states(ctx, state, decoded)
            return
        yield from self.stepwise_states(ctx, state)

    def stepwise_states(self, ctx: JobContext, state: Mapping[str, torch.Tensor],
                        ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """(step, state) for every step, one :meth:`compute_step` at a time."""
        current = dict(state)
        for step in range(1, ctx.spec.steps + 1):
            current = self.compute_step(ctx, current, step)
            yield step, current

    def compute_step(
        self, ctx: JobContext, state: Mapping[str, torch.Tensor], step: int
    ) -> dict[str, torch.Tensor]:
        """State ``step`` from state ``step - 1`` (hook: cheaters override this); on the
        worker processes when the job cuts its steps into partitions and there are several."""
        if ctx.spec.partitions > 1 and (self.workers > 1 or self.remote_workers):
            if self._partition_workers is None:
                self._partition_workers = PartitionWorkers(
                    self.workers if self.workers > 1 else 0, self.remote_workers)
            return self._partition_workers.run_step(ctx, state, step)
        return run_step(ctx, state, step)

    def close(self) -> None:
        """Stop the worker processes, if any were started, and delete the stored uploads."""
        self.uploads.close()
        if self._partition_workers is not None:
            self._partition_workers.close()

    def trace(self, ctx: JobContext, state: Mapping[str, torch.Tensor], step: int,
              keep: bool | frozenset[RefKey] = False) -> StepGraph:
        """The traced replay of ``step``, keeping the values of ``keep`` (all, none, or those
        refs) (hook: cheaters override this)."""
        return trace_step(ctx, state, step, keep=keep)

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
        final = record.states.get(record.spec.steps)
        record.states = {step: state} if final is None else {step: state,
                                                             record.spec.steps: final}
        return state

    def commitment_at(self, record: JobRecord, step: int) -> StateCommitment:
        if step not in record.commitments:
            record.commitments = {step: StateCommitment.from_tensors(self.state_at(record, step))}
        return record.commitments[step]

    def graph(self, record: JobRecord, step: int) -> StepGraph:
        """The graph of ``step`` (the last one asked for is cached). Small steps keep every
        node output (see ``keep_values_below``), larger ones only digests."""
        if step not in record.graphs:
            if not 1 <= step <= record.spec.steps:
                raise UnknownQueryError(f"no step {step} in a job of {record.spec.steps} steps")
            state = self.state_at(record, step - 1)
            keep_all = sum(t.numel() * t.element_size() for t in state.values()) \
                < self.keep_values_below
            record.graphs = {step: self.trace(record.ctx, state, step, keep_all)}
            record.valued_graphs = {}
        return record.graphs[step]

    def graph_values(self, record: JobRecord, step: int, refs: Sequence[RefKey]) -> StepGraph:
        """The graph of ``step`` with the values of ``refs``: the kept graph of a small step,
        or a replay keeping just those (cached once)."""
        graph = self.graph(record, step)
        if graph.tracer.keep_outputs is True:
            return graph
        key = (step, frozenset(refs))
        if key not in record.valued_graphs:
            state = self.state_at(record, step - 1)
            record.valued_graphs = {key: self.trace(record.ctx, state, step, key[1])}
        return record.valued_graphs[key]

    # --- answering ------------------------------------------------------------------------

    def answer(self, query: Query) -> Answer:
        """Answer one dispute query with a signed payload (and tensors where asked)."""
        record = self._record(query.job_id)
        payload, blobs = self.build_payload(record, query)
        return Answer(self.sign_answer(query, payload.to_json()), blobs)

    def build_payload(self, record: JobRecord, query: Query
                      ) -> tuple[AnswerPayload, dict[str, TensorBlob]]:
        """The typed answer to ``query`` and the tensors sent with it (hook: cheaters)."""
        try:
            params = parse_query(query.kind, query.params)
        except MalformedMessage as exc:
            raise UnknownQueryError(str(exc)) from exc
        return build_answer(self, record, params)

    def sign_answer(self, query: Query, payload: dict[str, Any]) -> SignedMessage:
        return sign_message(self.key, query.context, payload)
