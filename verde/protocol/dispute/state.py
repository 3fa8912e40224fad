"""The dispute as a resumable state machine: ``next_queries()``, ``apply(event)``, JSON.

The protocol's phases are objects (``verde.protocol.dispute.phases``); this module runs them:
it asks the current phase's query of both parties, reads and verifies each signed answer, lets
the phase check it, and advances once both parties of a round have an outcome.

Time is an input: a deadline passing is the event ``{"type": "timeout", "party", "round"}``,
so the state machine itself never waits. Answers are ``{"type": "answer", "party", "round",
"signed": <SignedMessage json>, "blobs": {key: TensorBlob json}}``. A round is decided once
both parties asked have an outcome; a party that missed the deadline, sent an answer that
contradicts its own commitments, or signed two different answers to one query loses (the last
one at once, with the equivocation proof as evidence).

Everything in ``to_json`` is JSON: the opening (spec, both signed results, the dispute id) and
the event log. Replaying the log is how a resumed arbiter and an offline verifier both reach
the same state (every check runs again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proofs import (
    Descent,
    MessageContext,
    SignedMessage,
    canonical_json,
    check_equivocation,
    verify_message,
)
from proofs.errors import ProofError
from verde.protocol.dispute import rules
from verde.protocol.dispute.committee import Attestation, Committee, CommitteeError
from verde.protocol.dispute.errors import DisputeFinished, Fault, InvalidEvent, NoDisputeError
from verde.protocol.dispute.phases import PHASES, Phase
from verde.protocol.dispute.progress import DisputeProgress
from verde.protocol.dispute.verdict import Verdict
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.endpoints import EndpointRecord, InvalidEndpoint
from verde.protocol.peers.errors import MalformedMessage
from verde.protocol.peers.messages import Query
from verde.protocol.peers.result import InvalidResult, check_result

#: Version 2: graph leaves are repops TraceNodes (graph format 2), answers are typed messages.
STATE_VERSION = 2
PARTIES = rules.PARTIES


def dispute_id_for(job_id: str, result_a: SignedMessage, result_b: SignedMessage) -> str:
    """A dispute id bound to the job and both signed results."""
    doc = {"job": job_id, "a": result_a.to_json(), "b": result_b.to_json()}
    return hashlib.sha256(b"verde/dispute/v1\x00" + canonical_json(doc)).hexdigest()


@dataclass(frozen=True)
class Accepted:
    """A party's answer this round passed its phase's check; ``value`` is what was kept."""

    value: Any


Outcome = Accepted | Fault


class DisputeState:
    """One dispute between parties ``a`` and ``b`` (see the module docstring)."""

    def __init__(
        self,
        spec: JobSpec,
        result_a: SignedMessage,
        result_b: SignedMessage,
        *,
        deadline_s: float = 60.0,
        dispute_id: str | None = None,
        committee: Committee | None = None,
    ) -> None:
        self.spec = spec
        #: With a committee, a timeout counts only with the committee's attestation of the
        #: silence at the party's vouched address (``verde.protocol.dispute.committee``).
        self.committee = committee
        self.results = {"a": result_a, "b": result_b}
        self.dispute_id = dispute_id or dispute_id_for(spec.job_id, result_a, result_b)
        self.deadline_s = float(deadline_s)
        self.transcript: list[dict[str, Any]] = []
        self.round = 0
        self.outcomes: dict[str, Outcome] = {}
        self.received: dict[str, dict[int, SignedMessage]] = {"a": {}, "b": {}}
        self.progress = DisputeProgress(spec, {}, {})
        self._open()

    # --- opening --------------------------------------------------------------------------

    def _open(self) -> None:
        claims, faults = {}, {}
        for party in PARTIES:
            try:
                claims[party] = check_result(self.results[party], self.spec.job_id, self.spec.steps)
            except InvalidResult as exc:
                faults[party] = Fault("invalid_result", str(exc))
        if faults:
            self._finish_with_faults(faults)
            return
        if claims["a"].key == claims["b"].key:
            raise NoDisputeError("both results are equal: there is nothing to dispute")
        self.progress.step_roots = {p: claims[p].step_root for p in PARTIES}
        self.progress.keys = {p: claims[p].signer_hex for p in PARTIES}
        self.progress.descent = Descent.start(self.spec.steps + 1, claims["a"].step_root,
                                              claims["b"].step_root)  # fmt: skip
        self.round = 1

    # --- queries --------------------------------------------------------------------------

    @property
    def verdict(self) -> Verdict | None:
        return self.progress.verdict

    @property
    def done(self) -> bool:
        return self.progress.done

    @property
    def phase(self) -> str:
        """The current phase's name (``"done"`` once there is a verdict)."""
        return self.progress.phase

    @property
    def rounds(self) -> int:
        return self.round

    def _phase(self) -> Phase:
        return PHASES[self.progress.phase]

    def next_queries(self) -> list[Query]:
        """The queries of the current round still waiting for an answer (empty when done)."""
        if self.done:
            return []
        params = self._phase().query(self.progress)
        return [
            Query(self.spec.job_id, self.dispute_id, self.round, params.KIND, params.to_json(),
                  party, self.deadline_s)
            for party in PARTIES
            if party not in self.outcomes
        ]

    # --- events ---------------------------------------------------------------------------

    def apply(self, event: dict[str, Any], *, blobs_available: bool = True) -> None:
        """Apply one event (an answer or a missed deadline). See the module docstring."""
        if self.done:
            raise DisputeFinished("the dispute already has a verdict")
        if not isinstance(event, dict) or event.get("type") not in ("answer", "timeout"):
            raise InvalidEvent("event must be a dict with type 'answer' or 'timeout'")
        party = event.get("party")
        rnd = event.get("round")
        if party not in PARTIES or isinstance(rnd, bool) or not isinstance(rnd, int):
            raise InvalidEvent("event needs party 'a' or 'b' and an integer round")
        if rnd > self.round or rnd < 1:
            raise InvalidEvent(f"event for round {rnd}, the dispute is in round {self.round}")
        recorded = dict(event) if blobs_available else {k: v for k, v in event.items()
                                                          if k != "blobs"}  # fmt: skip
        if event["type"] == "timeout":
            if rnd != self.round or party in self.outcomes:
                raise InvalidEvent(f"no query to party {party} is pending in round {rnd}")
            self._check_silence(party, event)
            self.transcript.append(recorded)
            self._set_outcome(party, Fault("missed_deadline",
                                           f"no answer by the deadline of round {rnd}"))
            return
        try:
            signed = SignedMessage.from_json(event["signed"])
        except (KeyError, ProofError, TypeError, ValueError) as exc:
            raise InvalidEvent(f"answer is not a signed message: {exc}") from exc
        previous = self.received[party].get(rnd)
        if previous is not None:
            self._check_duplicate(party, rnd, previous, signed, recorded)
            return
        if rnd != self.round:
            raise InvalidEvent(f"first answer for round {rnd} arrived in round {self.round}")
        self.transcript.append(recorded)
        self.received[party][rnd] = signed
        self._set_outcome(party, self._judge(party, signed, event.get("blobs"), blobs_available))

    def _judge(self, party: str, signed: SignedMessage, blobs: Any,
               blobs_available: bool) -> Outcome:
        """The outcome of one party's first answer this round."""
        phase = self._phase()
        try:
            self._verify_signed(party, signed)
            try:
                answer = phase.answer_type.from_json(signed.payload)
            except MalformedMessage as exc:
                raise Fault("malformed", str(exc)) from exc
            return Accepted(phase.check(self.progress, party, answer, blobs, blobs_available))
        except Fault as fault:
            if fault.evidence is None:
                fault.evidence = {"message": signed.to_json()}
            return fault

    def _check_silence(self, party: str, event: Mapping[str, Any]) -> None:
        """A timeout names where the party was silent (its own endpoint record, if given, must
        cover the time); with a committee, the committee must attest the silence."""
        record = None
        if "endpoint" in event:
            try:
                record = EndpointRecord.from_json(event["endpoint"])
            except InvalidEndpoint as exc:
                raise InvalidEvent(f"timeout of party {party}: {exc}") from exc
            if record.signer.hex() != self.progress.keys[party]:
                raise InvalidEvent(f"timeout of party {party}: the endpoint record is not its")
        if self.committee is None:
            return
        if record is None:
            raise InvalidEvent(f"timeout of party {party}: a committee dispute names the "
                               "party's endpoint record")
        context = MessageContext(self.spec.job_id, self.dispute_id, self.round,
                                 self._phase().answer_type.KIND)
        try:
            attestation = Attestation.from_json(event.get("attestation"))
            attestation.check(self.committee, context, self.progress.keys[party])
        except CommitteeError as exc:
            raise InvalidEvent(f"timeout of party {party}: {exc}") from exc
        seen = attestation.statement
        if seen.address != record.address or not (
                record.issued_at <= seen.observed_at < record.expires_at):
            raise InvalidEvent(f"timeout of party {party}: the silence was not observed at an "
                               "address it vouched for at that time")

    def _check_duplicate(self, party: str, rnd: int, first: SignedMessage,
                         signed: SignedMessage, recorded: dict[str, Any]) -> None:  # fmt: skip
        """A second answer to one query: identical is harmless; different is equivocation."""
        if canonical_json(first.payload) == canonical_json(signed.payload):
            return
        try:
            verify_message(signed, first.context)
            if signed.signer.hex() != self.progress.keys[party]:
                return
            proof = check_equivocation(first, signed)
        except ProofError:
            return  # not attributable to the party: ignored
        self.transcript.append(recorded)
        faults = {party: Fault("equivocation", f"two different signed answers in round {rnd}",
                               proof.to_json())}
        other = rules.other(party)
        other_outcome = self.outcomes.get(other)
        if isinstance(other_outcome, Fault) and rnd == self.round:
            faults[other] = other_outcome
        self._finish_with_faults(faults)

    def _verify_signed(self, party: str, signed: SignedMessage) -> None:
        expected = MessageContext(self.spec.job_id, self.dispute_id, self.round,
                                  self._phase().answer_type.KIND)
        try:
            verify_message(signed, expected)
        except ProofError as exc:
            raise Fault("invalid_signature", f"answer does not verify: {exc}") from exc
        if signed.signer.hex() != self.progress.keys[party]:
            raise Fault("invalid_signature", "answer is signed by another key than the result")

    def _set_outcome(self, party: str, outcome: Outcome) -> None:
        self.outcomes[party] = outcome
        if rules.round_complete(PARTIES, self.outcomes):
            self._complete_round()

    # --- transitions ----------------------------------------------------------------------

    def _complete_round(self) -> None:
        faults = {p: o for p, o in self.outcomes.items() if isinstance(o, Fault)}
        if faults:
            self._finish_with_faults(faults)
            return
        ok = {p: o.value for p, o in self.outcomes.items() if isinstance(o, Accepted)}
        self.outcomes = {}
        self._phase().advance(self.progress, ok)
        if not self.done:
            self.round += 1

    def _finish_with_faults(self, faults: dict[str, Fault]) -> None:
        winner, losers = rules.losers_of_faults(list(faults))
        self.progress.finish(Verdict(winner, losers, "fault",
                                     {p: f.to_json() for p, f in faults.items()}))
        self.outcomes = {}

    # --- persistence ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        verdict = self.progress.verdict
        return {
            "version": STATE_VERSION,
            "spec": self.spec.to_dict(),
            "results": {p: self.results[p].to_json() for p in PARTIES},
            "dispute_id": self.dispute_id,
            "deadline_s": self.deadline_s,
            "transcript": self.transcript,
            "verdict": verdict.to_json() if verdict else None,
            **({"committee": self.committee.to_json()} if self.committee else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, blobs_available: bool = True,
                  trusted_recomputation: list[str] | None = None) -> DisputeState:  # fmt: skip
        """Rebuild a dispute by replaying its transcript (every check runs again)."""
        if data.get("version") != STATE_VERSION:
            raise InvalidEvent(f"dispute state version {data.get('version')!r} is not "
                               f"{STATE_VERSION}, the version this arbiter speaks")
        try:
            committee = Committee.from_json(data["committee"]) if "committee" in data else None
        except CommitteeError as exc:
            raise InvalidEvent(str(exc)) from exc
        state = cls(JobSpec.from_mapping(data["spec"]),
                    SignedMessage.from_json(data["results"]["a"]),
                    SignedMessage.from_json(data["results"]["b"]),
                    deadline_s=data["deadline_s"], dispute_id=data["dispute_id"],
                    committee=committee)  # fmt: skip
        if trusted_recomputation is not None:
            try:
                state.progress.trusted_recomputation = tuple(
                    bytes.fromhex(d) for d in trusted_recomputation)
            except (TypeError, ValueError) as exc:
                raise InvalidEvent(f"recomputed digests are not hex: {exc}") from exc
        for event in data["transcript"]:
            state.apply(event, blobs_available=blobs_available)
        return state
