"""Coded training over real (in-process) verde providers, with disputes for split groups."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import torch

from proofs import SigningKey
from verde.coding import Coordinator, FractionalRepetitionCode, InProcessWorker, ReplicatedGroups
from verde.coding.errors import TooManyStragglers
from verde.integration.coded_training.jobs import CodedJob
from verde.integration.coded_training.providers import (
    ProviderWorker,
    WorkerAnswerInvalid,
    provider_workers,
    train_on_providers,
    train_reference,
)
from verde.protocol.faults.plan import FaultPlan
from verde.protocol.faults.provider import CheatingProvider
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.local import LocalPeer
from verde.protocol.peers.messages import TensorBlob
from verde.protocol.peers.state import StateEntries
from verde.protocol.provider.provider import Provider

STEPS = 3
#: Op 25 of the MLP gradient step is the mm producing the first layer's weight gradient, so
#: corrupting it always changes the committed gradient (a cheater that is never masked).
GRADIENT_MM = 25


def key(label: str) -> SigningKey:
    return SigningKey.from_seed(label.encode().ljust(32, b"\0")[:32])


@pytest.fixture(scope="module")
def job() -> CodedJob:
    base = JobSpec.from_mapping({
        "program": "mlp", "config": {"hidden": 16}, "dataset": {"name": "digits"},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "steps": 10,
        "batch_size": 16, "seed": 1,
    })  # fmt: skip
    return CodedJob(base, 2)


@pytest.fixture(scope="module")
def reference(job: CodedJob) -> str:
    return train_reference(job, STEPS).digest


class SlowPeer(LocalPeer):
    """A real provider whose job submissions take ``seconds`` longer (a straggler)."""

    def __init__(self, provider: Provider, seconds: float) -> None:
        super().__init__(provider)
        self.seconds = seconds

    def submit(self, spec: Mapping[str, Any]) -> str:
        time.sleep(self.seconds)
        return super().submit(spec)


class TamperingPeer(LocalPeer):
    """Serves a gradient whose bytes differ from what its provider committed to."""

    def fetch_state(self, job_id: str, names: Sequence[str]) -> StateEntries:
        entries = super().fetch_state(job_id, names)
        blobs = dict(entries.blobs)
        t = blobs[names[0]].to_tensor()
        blobs[names[0]] = TensorBlob.from_tensor(t + 1.0)
        return StateEntries(entries.payload, blobs)


def honest_peers(n: int, prefix: str = "p") -> dict[str, LocalPeer]:
    return {f"{prefix}{i}": LocalPeer(Provider(key(f"{prefix}{i}"), f"{prefix}{i}"))
            for i in range(n)}  # fmt: skip


def cheater(name: str) -> LocalPeer:
    plan = FaultPlan("corrupt_op", node=GRADIENT_MM)
    return LocalPeer(CheatingProvider(key(name), name, plan=plan))


def test_fractional_repetition_over_providers_matches_uncoded_bits(
        job: CodedJob, reference: str) -> None:
    peers = honest_peers(3)
    peers["slow"] = SlowPeer(Provider(key("slow"), "slow"), 2.0)
    with Coordinator(FractionalRepetitionCode(4, 1), provider_workers(job, peers)) as coord:
        run = train_on_providers(job, coord, STEPS)
    assert run.digest == reference
    assert all(3 not in o.answered and 3 in o.stragglers for o in run.outcomes)
    assert coord.history.straggle_rate(3) == 1.0


def test_a_dropped_provider_beyond_s_raises(job: CodedJob) -> None:
    peers = honest_peers(2)
    peers.update({f"slow{i}": SlowPeer(Provider(key(f"slow{i}"), f"slow{i}"), 3.0)
                  for i in range(2)})  # fmt: skip
    with Coordinator(FractionalRepetitionCode(4, 1), provider_workers(job, peers),
                     timeout_s=1.0) as coord, pytest.raises(TooManyStragglers):  # fmt: skip
        # workers 2 and 3 (group 1) are both slow: partition 1 is missing
        train_on_providers(job, coord, 1)


def test_split_group_is_settled_by_a_dispute_naming_the_cheater(
        job: CodedJob, reference: str) -> None:
    peers = honest_peers(3)
    peers["mallory"] = cheater("mallory")
    # detect mode, r = f + 1 = 2: every replica answers, so every split is seen
    with Coordinator(ReplicatedGroups(4, 2, 1, mode="detect"),
                     provider_workers(job, peers)) as coord:  # fmt: skip
        run = train_on_providers(job, coord, STEPS)
    assert run.digest == reference
    assert [o.faulty for o in run.outcomes] == [(3,)] * STEPS
    assert len(run.disputes) == STEPS
    for d in run.disputes:
        assert d.partition == 1 and d.resolution.cheaters == ["mallory"]
        assert d.resolution.honest == ["p2"]
        assert d.spec.kind == "gradient" and d.spec.init_root is not None
        assert [r.verdict.reason for r in d.resolution.disputes] == ["recomputed_operator"]


def test_correct_mode_outvotes_and_still_disputes(job: CodedJob, reference: str) -> None:
    peers: dict[str, LocalPeer] = {"q0": honest_peers(1, "q")["q0"],
                                   "q1": SlowPeer(Provider(key("q1"), "q1"), 2.0)}
    # q1 is slow, so mallory's answer is in hand before the group has a majority
    peers["mallory"] = cheater("mallory-2")
    peers.update(honest_peers(3, "r"))
    with Coordinator(ReplicatedGroups(6, 3, 1), provider_workers(job, peers)) as coord:
        run = train_on_providers(job, coord, 1)
    assert run.digest == train_reference(job, 1).digest
    assert run.outcomes[0].faulty == (2,)
    assert run.disputes[0].resolution.cheaters == ["mallory"]


def test_honest_replicas_never_dispute(job: CodedJob, reference: str) -> None:
    with Coordinator(ReplicatedGroups(4, 2, 1, mode="detect"),
                     provider_workers(job, honest_peers(4, "h"))) as coord:  # fmt: skip
        run = train_on_providers(job, coord, STEPS)
    assert run.digest == reference and run.disputes == []
    assert all(o.faulty == () for o in run.outcomes)


def test_a_gradient_that_does_not_match_its_commitment_is_void(job: CodedJob) -> None:
    worker = ProviderWorker(TamperingPeer(Provider(key("tamper"), "tamper")), job, "tamper")
    params, _ = job.initial_training_state()
    with pytest.raises(WorkerAnswerInvalid, match="tamper"):
        worker.partition_gradient(job.gradient_round(1, params), 0)


def test_a_tampering_provider_counts_as_failed(job: CodedJob, reference: str) -> None:
    peers = honest_peers(3)
    peers["tamper"] = TamperingPeer(Provider(key("tamper-2"), "tamper-2"))
    with Coordinator(FractionalRepetitionCode(4, 1), provider_workers(job, peers)) as coord:
        run = train_on_providers(job, coord, STEPS)
    assert run.digest == reference
    assert all(3 in o.failed or 3 not in o.answered for o in run.outcomes)


def test_coded_job_refuses_what_it_cannot_split(job: CodedJob) -> None:
    with pytest.raises(ValueError, match="not divisible"):
        CodedJob(job.base, 3)
    with pytest.raises(ValueError, match="train job"):
        CodedJob(job.base.with_changes(kind="infer", optimizer={}), 2)
    with pytest.raises(ValueError, match="partition must be"):
        job.partition_samples(1, 2)
    workers = [InProcessWorker(lambda payload, p: torch.zeros(1)) for _ in range(4)]
    with Coordinator(FractionalRepetitionCode(4, 1), workers) as coord, \
            pytest.raises(ValueError, match="ProviderWorkers"):
        train_on_providers(job, coord, 1)


def test_partitions_tile_the_train_jobs_batch(job: CodedJob) -> None:
    batch = job.context.batch_indices(2)
    parts = [job.partition_samples(2, p) for p in range(job.n_partitions)]
    assert parts[0] + parts[1] == batch
    spec = job.gradient_spec(2, 1, "ab" * 32)
    assert list(spec.samples) == parts[1] and spec.init == {"root": "ab" * 32}
