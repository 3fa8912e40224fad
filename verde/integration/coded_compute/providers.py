"""Coded computation over verde providers: share workers backed by providers, and a referee
that settles the shares the code locates as wrong by verde disputes.

A :class:`ProviderShareWorker` is a ``verde.coding.coded_compute.ShareWorker`` backed by one
verde provider (in this process, ``verde.protocol.peers.local.LocalPeer``, or over gRPC, the
arbiter package's ``GrpcProviderPeer``): it uploads the share job's inputs
(:mod:`verde.integration.coded_compute.share_jobs`; content-addressed, the returned roots
checked against ours), submits the job, takes the provider's signed result and fetches the
outputs with Merkle proofs against its final state root. What the code decodes is therefore
something each provider signed and can be held to.

The codes locate wrong answers (SBACC's DCT code, the Strassen-like scheme's check relations);
:class:`DisputingShareReferee` then has a second provider compute the located share and, where
the two disagree, settles it by a verde dispute (``verde.protocol.dispute.multi.settle``:
correct whenever one of them is honest; Canetti, Riva, Rothblum 2011; Verde, Arun et al.
2025). The loser is named with a verdict anyone can check, the winner's answer replaces the
located one, and an honest provider the code flagged wrongly (an approximate code's tolerance)
is upheld instead of being named. Disputes run in process by default; the arbiter package
passes a runner that asks an arbiter service.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from proofs import SignedMessage
from verde.coding.coded_compute import Share
from verde.coding.errors import CodingError
from verde.coding.gather import Cancelled
from verde.errors import VerdeError
from verde.integration.coded_compute.share_jobs import ShareJobs
from verde.integration.coded_training.providers import WorkerAnswerInvalid
from verde.protocol.dispute.multi import DisputeRunner, Resolution, local_dispute_runner, settle
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.errors import InvalidStateEntries
from verde.protocol.peers.fetch import fetch_outputs
from verde.protocol.peers.protocol import StateExchangePeer
from verde.protocol.peers.result import InvalidResult
from verde.protocol.peers.state import state_root_hex, state_to_blobs

#: Builds the dispute runner for one share job from its signed results (keyed by provider
#: name) and the peers that produced them.
ShareRunnerFactory = Callable[[JobSpec, Mapping[str, SignedMessage],
                               Mapping[str, StateExchangePeer]], DisputeRunner]


@dataclass(frozen=True)
class ShareAnswer:
    """One provider's verified answer to one share: the job, its signed result, the value."""

    index: int
    spec: JobSpec
    signed: SignedMessage = field(repr=False)
    value: torch.Tensor = field(repr=False)


@dataclass
class ProviderShareWorker:
    """A coded-computation worker backed by one verde provider (see the module docstring).

    ``name`` is how disputes name the provider (its address when an arbiter referees); several
    workers may share one provider and name, each computing its own shares.
    """

    peer: StateExchangePeer
    jobs: ShareJobs
    name: str
    job_timeout_s: float = 600.0
    answers: dict[int, ShareAnswer] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def compute(self, share: Share, cancel: threading.Event) -> torch.Tensor:
        answer = self.run(share, cancel)
        with self._lock:
            self.answers[share.index] = answer
        return answer.value

    def run(self, share: Share, cancel: threading.Event | None = None) -> ShareAnswer:
        """Upload, submit, wait for and fetch (verified) the job of ``share`` on this provider."""
        job = self.jobs.job(share)
        spec = job.spec
        for what, state in job.uploads:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"{self.name}: share {share.index} no longer needed")
            expected = state_root_hex(state)
            root = self.peer.put_state(state_to_blobs(state))
            if root != expected:
                raise WorkerAnswerInvalid(f"{self.name} stored the {what} of share "
                                          f"{share.index} under root {root}, expected "
                                          f"{expected}")
        job_id = self.peer.submit(spec.to_dict())
        if job_id != spec.job_id:
            raise WorkerAnswerInvalid(f"{self.name} named job {job_id}, expected {spec.job_id}")
        self.peer.wait(job_id, timeout_s=self.job_timeout_s)
        try:
            claim, outputs, indices = fetch_outputs(self.peer, spec)
        except (InvalidResult, InvalidStateEntries) as exc:
            raise WorkerAnswerInvalid(f"{self.name}: the answer to share {share.index} (job "
                                      f"{job_id[:16]}) does not verify: {exc}") from exc
        if claim.signed is None:  # pragma: no cover - check_result always keeps it
            raise WorkerAnswerInvalid(f"{self.name}: no signed result for job {job_id}")
        return ShareAnswer(share.index, spec, claim.signed, self.jobs.answer(spec, outputs,
                                                                               indices))


@dataclass(frozen=True)
class ShareDispute:
    """One located share put to a second provider: who was asked, and how it was settled."""

    index: int
    spec: JobSpec
    suspect: str
    referee: str
    resolution: Resolution | None
    #: why no resolution: the second provider could not produce a verified answer
    error: str = ""


@dataclass
class DisputingShareReferee:
    """Settles located shares (``verde.coding.coded_compute.ShareReferee``) by disputes.

    For a located share, providers other than the suspect's recompute it in turn — first the
    dedicated ``referees``, then the pool's ``workers`` in order starting after the suspect —
    until a pair's results settle with an honest side (at most ``max_attempts`` providers; all
    by default); that side's answer is returned. A second
    provider that agrees bit for bit settles it without a dispute. ``None`` when no pair had an
    honest side: the share is then an erasure. Every attempt is kept in ``disputes``.
    """

    workers: Sequence[ProviderShareWorker]
    referees: Sequence[ProviderShareWorker] = ()
    runner: ShareRunnerFactory | None = None
    max_attempts: int | None = None
    disputes: list[ShareDispute] = field(default_factory=list)

    def settle(self, share: Share, answer: object) -> torch.Tensor | None:
        suspect = self.workers[share.index]
        got = suspect.answers.get(share.index)
        if got is None:
            raise CodingError(f"share {share.index} was located without {suspect.name}'s "
                              "verified answer in hand")
        for other in self._candidates(share.index, suspect.name)[:self.max_attempts]:
            try:
                theirs = other.run(share)
            except VerdeError as exc:
                self.disputes.append(ShareDispute(share.index, got.spec, suspect.name,
                                                  other.name, None, f"{exc}"))
                continue
            if theirs.spec.job_id != got.spec.job_id:
                raise CodingError(f"share {share.index}: the second job {theirs.spec.job_id} "
                                  f"is not the first {got.spec.job_id}")
            resolution = self._settle(got, suspect, theirs, other)
            self.disputes.append(ShareDispute(share.index, got.spec, suspect.name, other.name,
                                              resolution))
            if suspect.name in resolution.honest:
                return got.value
            if other.name in resolution.honest:
                return theirs.value
        return None

    def _candidates(self, index: int, suspect: str) -> list[ProviderShareWorker]:
        n = len(self.workers)
        pool = [*self.referees, *(self.workers[(index + k) % n] for k in range(1, n))]
        seen = {suspect}
        out = []
        for w in pool:
            if w.name not in seen:
                seen.add(w.name)
                out.append(w)
        return out

    def _settle(self, got: ShareAnswer, suspect: ProviderShareWorker, theirs: ShareAnswer,
                other: ProviderShareWorker) -> Resolution:
        results = {suspect.name: got.signed, other.name: theirs.signed}
        peers = {suspect.name: suspect.peer, other.name: other.peer}
        identities = {name: peer.identity.hex() for name, peer in peers.items()}
        make_runner = self.runner or local_dispute_runner
        return settle(got.spec, results, identities, make_runner(got.spec, results, peers))
