"""Escalation of flagged inference answers, refereed by verde over the network.

Why: the Fides-style client (``verde.distill.guard.VerifiedInference``, after Kumar et al.,
ASIA CCS 2024) re-runs a flagged answer on a second provider and has a referee settle a
mismatch. :class:`RefereedEscalation` is that second provider and that referee for real: the
flagged requests become a verde ``infer`` job of the service model
(:class:`verde.integration.refereed_inference.ServiceModel`), which

- ``rerun`` uploads (inputs as a content-addressed dataset, the model's parameters as
  ``init.params``) and submits to the *second-opinion* provider, returning its outputs fetched
  with proofs against its signed final root, as softmax rows;
- ``settle`` submits, for the flagged request, the same job to the second-opinion provider
  and to the *challengers* (other verde providers, typically the service's own verde endpoint:
  the service's answer itself is not a signed verde result, so it cannot be disputed) and,
  when their signed results differ, has an arbiter referee a dispute
  (:func:`arbiter.delegate.delegate`, Verde, Arun et al. 2025). The verified answer is the
  winner's, fetched with proofs against the accepted final root; ``settle`` returns whichever
  of the two answers equals it bit for bit.

Every job run by ``rerun`` is remembered, so settling a row of it disputes that very job (all
flagged rows of one batch share one job and at most one set of disputes). What each settlement
found -- the job, the honest providers, the ones a dispute named dishonest, the dispute ids --
is kept in :attr:`RefereedEscalation.settlements`.

Errors map onto ``verde.distill``'s: a settlement in which every provider lost, or whose verified
answer is neither of the two, raises :class:`NoHonestAnswerError`; a provider or arbiter that
cannot be reached, fails the job or leaves a dispute undecided raises :class:`EscalationError`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from arbiter.arbiter_client import ArbiterClient
from arbiter.delegate import delegate
from arbiter.errors import ArbiterError, ArbiterInputError
from arbiter.provider_client import GrpcProviderPeer
from arbiter.transfer import check_same_root, upload_inputs
from verde.distill.errors import DistillArgumentError, EscalationError, NoHonestAnswerError
from verde.distill.escalation import InferenceRequest, check_two_answers
from verde.errors import VerdeError, VerdeInputError
from verde.integration.refereed_inference import ServiceModel, job_answers
from verde.protocol.dispute.multi import Resolution
from verde.protocol.jobs.portable import PortableJob
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.fetch import fetch_outputs
from verde.protocol.peers.result import check_result

PeerFactory = Callable[[str], GrpcProviderPeer]


@dataclass
class Settlement:
    """What settling one request found (``cheaters``: named dishonest by a dispute)."""

    request: int
    job_id: str
    honest: list[str]
    cheaters: list[str]
    withheld: list[str]
    dispute_ids: list[str]
    reasons: dict[str, str]
    verified: torch.Tensor | None


@dataclass
class _Job:
    """A job this escalation ran: its spec and inputs (the uploads are rebuilt from them when
    needed, so a remembered job never holds a copy of the parameters), where it was uploaded
    and, once known, its refereed answers."""

    spec: JobSpec
    inputs: torch.Tensor
    uploaded: set[str] = field(default_factory=set)
    resolution: Resolution | None = None
    verified: torch.Tensor | None = None


class RefereedEscalation:
    """A :class:`~verde.distill.escalation.SecondOpinion` and
    :class:`~verde.distill.escalation.DisputeOpener` over verde providers and an arbiter.

    ``second_opinion`` and ``challengers`` are provider addresses (HOST:PORT), ``arbiter`` an
    arbiter's address or an open :class:`ArbiterClient` (closed by :meth:`close` only when
    this object opened it). ``peer_factory`` opens a provider client (TLS, a client key).
    """

    def __init__(self, model: ServiceModel, *, second_opinion: str,
                 challengers: Sequence[str], arbiter: str | ArbiterClient,
                 peer_factory: PeerFactory = GrpcProviderPeer,
                 job_timeout_s: float = 600.0, dispute_timeout_s: float = 600.0,
                 max_jobs: int = 64) -> None:
        if not isinstance(model, ServiceModel):
            raise ArbiterInputError("model must be a verde.integration.refereed_inference."
                                    f"ServiceModel, got {type(model).__name__}")
        if isinstance(challengers, str):
            raise ArbiterInputError(f"challengers must be a list of provider addresses, got "
                                    f"the string {challengers!r}")
        providers = [second_opinion, *challengers]
        if not challengers or len(set(providers)) != len(providers):
            raise ArbiterInputError("a refereed escalation needs one or more challengers, all "
                                    "distinct from each other and from the second opinion, got "
                                    f"{providers}")
        if max_jobs < 1:
            raise ArbiterInputError(f"max_jobs must be positive, got {max_jobs}")
        self.model = model
        self.second_opinion = second_opinion
        self.challengers = list(challengers)
        self._owns_arbiter = isinstance(arbiter, str)
        self.arbiter = ArbiterClient(arbiter) if isinstance(arbiter, str) else arbiter
        self.peer_factory = peer_factory
        self.job_timeout_s = job_timeout_s
        self.dispute_timeout_s = dispute_timeout_s
        self.max_jobs = max_jobs
        self.settlements: list[Settlement] = []
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._rows: dict[bytes, tuple[str, int]] = {}

    def close(self) -> None:
        if self._owns_arbiter:
            self.arbiter.close()

    def __enter__(self) -> RefereedEscalation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def cheaters(self) -> list[str]:
        """Every provider a dispute of this escalation named dishonest, first seen first."""
        return list(dict.fromkeys(c for s in self.settlements for c in s.cheaters))

    @staticmethod
    def matches(a: torch.Tensor, b: torch.Tensor) -> bool:
        """Answers are equal bit for bit (they are computed under repops)."""
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))

    # --- SecondOpinion ---------------------------------------------------------------------

    def rerun(self, inputs: torch.Tensor) -> torch.Tensor:
        """The second-opinion provider's verified answers to ``inputs`` (softmax rows)."""
        job = self.model.infer_job(inputs)
        ran = self._remember(job.spec, inputs)
        spec = job.spec
        addr = self.second_opinion
        try:
            self._upload(ran, [addr], job)
            with self.peer_factory(addr) as peer:
                job_id = peer.submit(spec.to_dict())
                if job_id != spec.job_id:
                    raise ArbiterError(f"provider {addr} computed job id {job_id}, expected "
                                       f"{spec.job_id}: it runs an incompatible verde version")
                peer.wait(spec.job_id, timeout_s=self.job_timeout_s)
                _, outputs, indices = fetch_outputs(peer, spec)
        except VerdeInputError:
            raise
        except VerdeError as exc:
            raise EscalationError(f"second opinion from {addr}: {exc}") from exc
        return job_answers(spec, outputs, indices)

    # --- DisputeOpener ---------------------------------------------------------------------

    def settle(self, request: InferenceRequest, answer_a: torch.Tensor,
               answer_b: torch.Tensor) -> torch.Tensor:
        """The answer (``answer_a`` or ``answer_b``) that the refereed job's verified outputs
        equal; raises :class:`NoHonestAnswerError` when neither does or nobody is honest."""
        check_two_answers(answer_a, answer_b)
        for name, answer in (("answer_a", answer_a), ("answer_b", answer_b)):
            if answer.dtype != torch.float32:
                raise DistillArgumentError(
                    f"{name} is {answer.dtype}: answers are compared bit for bit as float32 "
                    "softmax rows (verde.distill.answers_from_logits)")
        ran, rows, job = self._locate(request.inputs)
        settlement = self._referee(request.index, ran, rows, job)
        verified = settlement.verified
        if verified is None:
            raise NoHonestAnswerError(
                f"request {request.index}: every provider lost (job {settlement.job_id[:16]}; "
                f"named dishonest: {settlement.cheaters}; withheld: {settlement.withheld})")
        for answer in (answer_a, answer_b):
            if self.matches(verified, answer):
                return answer
        raise NoHonestAnswerError(
            f"request {request.index}: the refereed answer of job {settlement.job_id[:16]} "
            f"(honest: {settlement.honest}; named dishonest: {settlement.cheaters}) matches "
            "neither answer")

    def _referee(self, index: int, ran: _Job, rows: list[int],
                 job: PortableJob | None) -> Settlement:
        spec = ran.spec
        providers = [self.second_opinion, *self.challengers]
        try:
            if ran.resolution is None:
                self._upload(ran, providers, job)
                ran.resolution = delegate(spec, providers, self.arbiter,
                                          peer_factory=self.peer_factory,
                                          job_timeout_s=self.job_timeout_s,
                                          dispute_timeout_s=self.dispute_timeout_s)
            res = ran.resolution
            if len(res.results) < 2:
                # One result alone was never refereed: overturning the service's answer on
                # it would let a lone second opinion win while the challengers are slow.
                raise EscalationError(
                    f"request {index}: only {sorted(res.results)} returned a result for job "
                    f"{spec.job_id[:16]} (withheld: {res.withheld}): nothing could be "
                    "refereed, so no answer is overturned")
            if res.honest and ran.verified is None:
                ran.verified = self._verified_answers(ran, res)
        except VerdeInputError:
            raise
        except VerdeError as exc:
            raise EscalationError(f"request {index}: refereeing job {spec.job_id[:16]} on "
                                  f"{providers}: {exc}") from exc
        settlement = Settlement(index, spec.job_id, list(res.honest), list(res.cheaters),
                                list(res.withheld), [d.dispute_id for d in res.disputes],
                                dict(res.reasons),
                                None if ran.verified is None else ran.verified[rows])
        self.settlements.append(settlement)
        return settlement

    def _verified_answers(self, ran: _Job, res: Resolution) -> torch.Tensor:
        """The first honest provider's outputs, checked against the accepted final root."""
        spec = ran.spec
        addr = res.honest[0]
        accepted = check_result(res.results[addr], spec.job_id, spec.steps)
        with self.peer_factory(addr) as peer:
            claim, outputs, indices = fetch_outputs(peer, spec)
        check_same_root(claim.final_state, accepted.final_state, addr)
        return job_answers(spec, outputs, indices)

    # --- jobs ------------------------------------------------------------------------------

    def _upload(self, ran: _Job, providers: Sequence[str],
                job: PortableJob | None = None) -> None:
        todo = [p for p in providers if p not in ran.uploaded]
        if not todo:
            return
        if job is None:
            job = self.model.infer_job(ran.inputs)
            if job.spec.job_id != ran.spec.job_id:
                raise ArbiterError(f"the service model changed since job "
                                   f"{ran.spec.job_id[:16]} ran: its parameters or settings "
                                   "give another job now")
        upload_inputs(job, todo, self.peer_factory)
        ran.uploaded.update(todo)

    def _remember(self, spec: JobSpec, inputs: torch.Tensor) -> _Job:
        """The remembered job ``spec`` over ``inputs``, with where each row sits."""
        job_id = spec.job_id
        if job_id in self._jobs:
            self._jobs.move_to_end(job_id)
            return self._jobs[job_id]
        ran = self._jobs[job_id] = _Job(spec, inputs.detach().cpu().clone())
        for row in range(inputs.shape[0]):
            self._rows.setdefault(_row_key(inputs[row]), (job_id, row))
        while len(self._jobs) > self.max_jobs:
            old, _ = self._jobs.popitem(last=False)
            self._rows = {k: v for k, v in self._rows.items() if v[0] != old}
        return ran

    def _locate(self, inputs: torch.Tensor) -> tuple[_Job, list[int], PortableJob | None]:
        """The remembered job holding every row of ``inputs`` and their rows there, or a new
        job over ``inputs`` alone (and its uploads)."""
        if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or inputs.shape[0] < 1:
            raise ArbiterInputError("request inputs must be a tensor with at least one row")
        found = [self._rows.get(_row_key(inputs[r])) for r in range(inputs.shape[0])]
        jobs = {f[0] for f in found if f is not None}
        if None not in found and len(jobs) == 1:
            job_id = jobs.pop()
            self._jobs.move_to_end(job_id)
            return self._jobs[job_id], [f[1] for f in found if f is not None], None
        job = self.model.infer_job(inputs)
        return self._remember(job.spec, inputs), list(range(inputs.shape[0])), job


def _row_key(row: torch.Tensor) -> bytes:
    """One request row's identity: its dtype, shape and bytes."""
    t = row.detach().cpu().contiguous()
    raw = t.reshape(-1).view(torch.uint8)  # any dtype, bfloat16 included (numpy has none)
    return f"{t.dtype}{tuple(t.shape)}".encode() + raw.numpy().tobytes()
