"""Coded training over verde providers, with disputes for replicas that disagree.

A :class:`ProviderWorker` is a coordinator worker (``verde.coding.coordinator.Worker``) backed
by a verde provider — in this process (``verde.protocol.peers.local.LocalPeer``) or over gRPC (the
arbiter package's ``GrpcProviderPeer``): for each partition of its task it uploads the step's
state 0, submits the partition's one-step gradient job
(:mod:`verde.integration.coded_training.jobs`), takes the provider's signed result and fetches the
``grad/*`` entries with Merkle proofs against the result's final state root. The worker's message
is therefore something the provider signed and can be held to, and the coded sum is formed on the
coordinator's side from verified parts.

When replicas of a group disagree (``verde.coding.byzantine``), :class:`DisputingReferee`
settles the group by verde disputes over that partition's gradient job between the replicas'
providers (``verde.protocol.dispute.multi.settle``: correct whenever one of them is honest; Canetti,
Riva, Rothblum 2011; Verde, Arun et al. 2025): the losers are named faulty with a verdict
anyone can check, instead of merely being outvoted. Disputes run in process by default; the
arbiter package passes a runner that asks an arbiter service instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from proofs import SignedMessage
from verde.coding.base import ordered_sum
from verde.coding.coordinator import Cancelled, Coordinator, StepOutcome, WorkerTask
from verde.coding.errors import CodingError
from verde.integration.coded_training.jobs import CodedJob, GradientRound, Params, state_digest
from verde.protocol.dispute.multi import DisputeRunner, Resolution, local_dispute_runner, settle
from verde.protocol.graph.execution import run_step
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.errors import InvalidStateEntries
from verde.protocol.peers.fetch import fetch_final_state
from verde.protocol.peers.protocol import StateExchangePeer
from verde.protocol.peers.result import InvalidResult

#: Builds the dispute runner for one gradient job from its signed results (keyed by worker
#: name) and the peers that produced them.
RunnerFactory = Callable[[JobSpec, Mapping[str, SignedMessage], Mapping[str, StateExchangePeer]],
                         DisputeRunner]


class WorkerAnswerInvalid(CodingError):
    """A provider's result or fetched gradient does not verify (the worker's answer is void)."""


@dataclass
class ProviderWorker:
    """A coded-training worker backed by one verde provider (see the module docstring)."""

    peer: StateExchangePeer
    job: CodedJob
    name: str
    job_timeout_s: float = 600.0
    receipts: dict[tuple[int, int], SignedMessage] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _uploaded: str = field(default="", init=False, repr=False)

    def compute(self, task: WorkerTask, cancel: threading.Event) -> torch.Tensor:
        round_ = task.payload
        if not isinstance(round_, GradientRound):
            raise TypeError(f"a provider worker's payload is a GradientRound, got "
                            f"{type(round_).__name__}")
        total: torch.Tensor | None = None
        for p, c in zip(task.partitions, task.coefficients, strict=True):
            if cancel.is_set():
                raise Cancelled(f"worker {self.name}: step {task.step} already decoded")
            g = self.partition_gradient(round_, p)
            term = g if c == 1.0 else g * c
            total = term if total is None else total + term
        if total is None:
            raise ValueError(f"worker {self.name} was given no partitions")
        return total

    def partition_gradient(self, round_: GradientRound, partition: int) -> torch.Tensor:
        """Run, verify and fetch one partition's gradient job on this provider."""
        self._upload(round_)
        spec = self.job.gradient_spec(round_.step, partition, round_.root)
        job_id = self.peer.submit(spec.to_dict())
        if job_id != spec.job_id:
            raise WorkerAnswerInvalid(f"{self.name} named job {job_id}, expected {spec.job_id}")
        self.peer.wait(job_id, timeout_s=self.job_timeout_s)
        try:
            claim, tensors = fetch_final_state(
                self.peer, job_id, spec.steps, self.job.grad_names(),
                structure=JobContext.from_spec(spec).state_structure())
        except (InvalidResult, InvalidStateEntries) as exc:
            raise WorkerAnswerInvalid(f"{self.name}: the gradient of job {job_id} does not "
                                      f"verify: {exc}") from exc
        signed = claim.signed
        if signed is None:  # pragma: no cover - check_result always keeps it
            raise WorkerAnswerInvalid(f"{self.name}: no signed result for job {job_id}")
        with self._lock:
            self.receipts[(round_.step, partition)] = signed
        return self.job.flatten(tensors)

    def _upload(self, round_: GradientRound) -> None:
        with self._lock:
            if self._uploaded == round_.root:
                return
        root = self.peer.put_state(round_.blobs)
        if root != round_.root:
            raise WorkerAnswerInvalid(f"{self.name} stored the state under root {root}, "
                                      f"expected {round_.root}")
        with self._lock:
            self._uploaded = root


@dataclass
class PartitionDispute:
    """One group settled by disputes: which step and partition, and the resolution."""

    step: int
    partition: int
    spec: JobSpec
    resolution: Resolution


@dataclass
class DisputingReferee:
    """Settles a split group of one step by verde disputes over its partition's gradient job.

    Groups are those of ``verde.coding.byzantine.ReplicatedGroups``: one partition per group,
    so group ``g`` is partition ``g`` and every replica's answer is exactly its provider's
    committed gradient for that job.
    """

    workers: Sequence[ProviderWorker]
    round: GradientRound
    runner: RunnerFactory | None = None
    disputes: list[PartitionDispute] = field(default_factory=list)

    def settle(self, group: int, answers: Mapping[int, Any]) -> frozenset[int]:
        spec = self.workers[0].job.gradient_spec(self.round.step, group, self.round.root)
        by_name = {self.workers[w].name: w for w in sorted(answers)}
        results: dict[str, SignedMessage] = {}
        for name, w in by_name.items():
            receipt = self.workers[w].receipts.get((self.round.step, group))
            if receipt is None:
                raise CodingError(f"worker {name} answered group {group} without a receipt")
            results[name] = receipt
        peers = {name: self.workers[w].peer for name, w in by_name.items()}
        identities = {name: peer.identity.hex() for name, peer in peers.items()}
        make_runner = self.runner or local_dispute_runner
        resolution = settle(spec, results, identities, make_runner(spec, results, peers))
        self.disputes.append(PartitionDispute(self.round.step, group, spec, resolution))
        return frozenset(by_name[name] for name in resolution.honest)


@dataclass
class ProviderTraining:
    """The outcome of coded training over providers."""

    params: Params
    opt_state: dict[str, torch.Tensor]
    outcomes: list[StepOutcome]
    disputes: list[PartitionDispute]

    @property
    def digest(self) -> str:
        return state_digest(self.params, self.opt_state)


def train_on_providers(job: CodedJob, coordinator: Coordinator, steps: int, *,
                       runner: RunnerFactory | None = None,
                       on_step: Callable[[StepOutcome], None] | None = None,
                       ) -> ProviderTraining:
    """Run ``steps`` coded steps of ``job`` with the coordinator's provider workers.

    With replicated groups, every split group is settled by disputes (``runner``; in process
    by default) and the losers are reported in the step's decisions; the coordinator's own
    referee is set aside while this runs. ``on_step`` sees every
    step's outcome as it completes (progress reporting).
    """
    workers = coordinator.workers
    if not all(isinstance(w, ProviderWorker) for w in workers):
        raise ValueError("train_on_providers needs a coordinator of ProviderWorkers")
    if coordinator.code.n_partitions != job.n_partitions:
        raise ValueError(f"the code has {coordinator.code.n_partitions} partitions, the job "
                         f"{job.n_partitions}")
    if not isinstance(steps, int) or not 0 < steps <= job.base.steps:
        raise ValueError(f"steps must be in [1, {job.base.steps}], got {steps!r}")
    referees: list[DisputingReferee] = []

    def referee(step: int, round_: Any) -> DisputingReferee:
        ref = DisputingReferee(workers, round_, runner)  # type: ignore[arg-type]
        referees.append(ref)
        return ref

    previous, coordinator.referee = coordinator.referee, referee
    params, opt_state = job.initial_training_state()
    outcomes = []
    try:
        for step in range(1, steps + 1):
            outcome = coordinator.run_step(step, job.gradient_round(step, params))
            params, opt_state = job.apply(params, opt_state, outcome.gradient, step)
            outcomes.append(outcome)
            if on_step is not None:
                on_step(outcome)
    finally:
        coordinator.referee = previous
    return ProviderTraining(params, opt_state, outcomes,
                            [d for r in referees for d in r.disputes])


def train_reference(job: CodedJob, steps: int) -> ProviderTraining:
    """Uncoded reference: every partition's gradient job computed once here, summed in order."""
    params, opt_state = job.initial_training_state()
    for step in range(1, steps + 1):
        round_ = job.gradient_round(step, params)
        grads = []
        for p in range(job.n_partitions):
            ctx = JobContext.from_spec(job.gradient_spec(step, p, round_.root))
            grads.append(job.flatten(run_step(ctx, round_.state, 1)))
        params, opt_state = job.apply(params, opt_state, ordered_sum(grads), step)
    return ProviderTraining(params, opt_state, [], [])


def provider_workers(job: CodedJob, peers: Mapping[str, StateExchangePeer]
                     ) -> list[ProviderWorker]:
    """One worker per named peer, in the mapping's order."""
    return [ProviderWorker(peer, job, name) for name, peer in peers.items()]
