"""The dispute as a resumable state machine: ``next_queries()``, ``apply(event)``, JSON.

Protocol (Verde, Arun et al. 2025, after Canetti, Riva, Rothblum 2011), one round per arrow:

1. ``step_descent``: Merkle descent over the two step-digest trees (leaves = state roots of
   steps 0..T) to the first step whose state differs;
2. ``step_leaves``: both reveal the state roots of steps ``s-1`` (agreed) and ``s`` with
   inclusion proofs (if ``s = 0`` the arbiter derives state 0 from the spec and rules);
3. ``graph_open``: both replay step ``s`` and commit to its graph (node count and the final
   ``commit_state`` node, which must output the state root they committed to for ``s``);
   the arbiter checks this against its own shape-only replay of step ``s``;
4. ``graph_descent``: descent over the two graph trees to the first differing node ``k``;
5. ``graph_leaf``: both reveal node ``k``, whose structure must match the arbiter's replay;
6. ``inputs``: both send node ``k``'s inputs with proofs (earlier node outputs, state
   ``s-1`` entries, data samples); then the arbiter recomputes node ``k`` and rules.

Time is an input: a deadline passing is the event ``{"type": "timeout", "party", "round"}``,
so the state machine itself never waits. Answers are ``{"type": "answer", "party", "round",
"signed": <SignedMessage json>, "blobs": {key: TensorBlob json}}``. A round is decided once
both parties asked have an outcome; a party that missed the deadline, sent an answer that
contradicts its own commitments, or signed two different answers to one query loses (the last
one at once, with the equivocation proof as evidence).

Everything in ``to_json`` is JSON; the arbiter service commits it before acting on it. The
arbiter's meta replay of step ``s`` is recomputed on load (it is a pure function of the spec).
"""

from __future__ import annotations

import hashlib
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
from verde.protocol.dispute.errors import DisputeFinished, Fault, InvalidEvent, NoDisputeError
from verde.protocol.dispute.phases import check_phase_answer
from verde.protocol.dispute.recompute import recompute_operator, recompute_state_root
from verde.protocol.dispute.verdict import Verdict
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers import kinds
from verde.protocol.peers.messages import Query
from verde.protocol.provider.execution import expected_structure
from verde.protocol.provider.result import InvalidResult, check_result
from verde.protocol.provider.tracing import COMMIT_OP

STATE_VERSION = 1
PARTIES = rules.PARTIES


def dispute_id_for(job_id: str, result_a: SignedMessage, result_b: SignedMessage) -> str:
    """A dispute id bound to the job and both signed results."""
    doc = {"job": job_id, "a": result_a.to_json(), "b": result_b.to_json()}
    return hashlib.sha256(b"verde/dispute/v1\x00" + canonical_json(doc)).hexdigest()


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
    ) -> None:
        self.spec = spec
        self.results = {"a": result_a, "b": result_b}
        self.dispute_id = dispute_id or dispute_id_for(spec.job_id, result_a, result_b)
        self.deadline_s = float(deadline_s)
        self.transcript: list[dict[str, Any]] = []
        self.phase = "step_descent"
        self.round = 0
        self.data: dict[str, Any] = {}
        self.outcomes: dict[str, Any] = {}
        self.received: dict[str, dict[str, Any]] = {"a": {}, "b": {}}
        self.verdict: Verdict | None = None
        self._expected: list[dict[str, Any]] | None = None
        self._descent: Descent | None = None
        self._inputs: dict[str, Any] = {}
        self._open()

    # --- opening --------------------------------------------------------------------------

    def _open(self) -> None:
        claims, faults = {}, {}
        for party in PARTIES:
            try:
                claims[party] = check_result(self.results[party], self.spec.job_id, self.spec.steps)
            except InvalidResult as exc:
                faults[party] = {"code": "invalid_result", "detail": str(exc)}
        if faults:
            winner, losers = rules.losers_of_faults(list(faults))
            self._finish(Verdict(winner, losers, "fault", faults))
            return
        if claims["a"].key == claims["b"].key:
            raise NoDisputeError("both results are equal: there is nothing to dispute")
        self.data["step_roots"] = {p: claims[p].step_root.hex() for p in PARTIES}
        self.data["keys"] = {p: claims[p].signer_hex for p in PARTIES}
        self._descent = Descent.start(self.spec.steps + 1, claims["a"].step_root,
                                      claims["b"].step_root)  # fmt: skip
        self.round = 1

    # --- queries --------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.verdict is not None

    def next_queries(self) -> list[Query]:
        """The queries of the current round still waiting for an answer (empty when done)."""
        if self.done:
            return []
        kind, params = self._round_query()
        spec = self.spec
        return [
            Query(spec.job_id, self.dispute_id, self.round, kind, params, party, self.deadline_s)
            for party in PARTIES
            if party not in self.outcomes
        ]

    def _round_query(self) -> tuple[str, dict[str, Any]]:
        if self.phase == "step_descent":
            return kinds.STEP_CHILDREN, {"position": self._descent.position.to_json()}
        if self.phase == "step_leaves":
            return kinds.STEP_LEAVES, {"indices": self._leaf_indices()}
        step = self.data["step"]
        if self.phase == "graph_open":
            return kinds.GRAPH_COMMIT, {"step": step}
        if self.phase == "graph_descent":
            return kinds.GRAPH_CHILDREN, {"step": step,
                                          "position": self._descent.position.to_json()}
        if self.phase == "graph_leaf":
            return kinds.GRAPH_LEAVES, {"step": step, "indices": [self.data["node"]]}
        if self.phase == "inputs":
            return kinds.NODE_INPUTS, {"step": step, "node": self.data["node"]}
        raise InvalidEvent(f"no query in phase {self.phase}")  # pragma: no cover

    def _leaf_indices(self) -> list[int]:
        k = self._descent.leaf_index
        return [0] if k == 0 else [k - 1, k]

    # --- events ---------------------------------------------------------------------------

    def apply(self, event: dict[str, Any], *, blobs_available: bool = True) -> None:
        """Apply one event (an answer or a missed deadline). See the module docstring."""
        if self.done:
            raise DisputeFinished("the dispute already has a verdict")
        if not isinstance(event, dict) or event.get("type") not in ("answer", "timeout"):
            raise InvalidEvent("event must be a dict with type 'answer' or 'timeout'")
        party = event.get("party")
        rnd = event.get("round")
        if party not in PARTIES or not isinstance(rnd, int):
            raise InvalidEvent("event needs party 'a' or 'b' and an integer round")
        if rnd > self.round or rnd < 1:
            raise InvalidEvent(f"event for round {rnd}, the dispute is in round {self.round}")
        recorded = dict(event) if blobs_available else {k: v for k, v in event.items()
                                                          if k != "blobs"}  # fmt: skip
        if event["type"] == "timeout":
            if rnd != self.round or party in self.outcomes:
                raise InvalidEvent(f"no query to party {party} is pending in round {rnd}")
            self.transcript.append(recorded)
            self._set_outcome(party, Fault("missed_deadline",
                                           f"no answer by the deadline of round {rnd}"))
            return
        try:
            signed = SignedMessage.from_json(event.get("signed"))
        except (ProofError, TypeError, ValueError) as exc:
            raise InvalidEvent(f"answer is not a signed message: {exc}") from exc
        previous = self.received[party].get(str(rnd))
        if previous is not None:
            self._check_duplicate(party, rnd, previous, signed, recorded)
            return
        if rnd != self.round:
            raise InvalidEvent(f"first answer for round {rnd} arrived in round {self.round}")
        self.transcript.append(recorded)
        self.received[party][str(rnd)] = signed.to_json()
        try:
            self._verify_signed(party, signed)
            parsed = self._check_answer(party, signed.payload, event.get("blobs"),
                                        blobs_available)  # fmt: skip
        except Fault as fault:
            if fault.evidence is None:
                fault.evidence = {"message": signed.to_json()}
            self._set_outcome(party, fault)
            return
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ProofError) as exc:
            # A payload shaped so oddly that a check tripped over it: still the sender's fault.
            fault = Fault("malformed", f"unreadable answer ({type(exc).__name__}: {exc})",
                          {"message": signed.to_json()})
            self._set_outcome(party, fault)
            return
        self._set_outcome(party, parsed)

    def _check_duplicate(self, party: str, rnd: int, previous: dict[str, Any],
                         signed: SignedMessage, recorded: dict[str, Any]) -> None:  # fmt: skip
        """A second answer to one query: identical is harmless; different is equivocation."""
        first = SignedMessage.from_json(previous)
        if canonical_json(first.payload) == canonical_json(signed.payload):
            return
        try:
            verify_message(signed, first.context)
            if signed.signer.hex() != self.data["keys"][party]:
                return
            proof = check_equivocation(first, signed)
        except ProofError:
            return  # not attributable to the party: ignored
        self.transcript.append(recorded)
        fault = {"code": "equivocation", "detail": f"two different signed answers in round {rnd}",
                 "evidence": proof.to_json()}  # fmt: skip
        self.outcomes[party] = {"fault": fault}
        other = rules.other(party)
        other_fault = self.outcomes.get(other, {}).get("fault") if self.outcomes else None
        faults = {party: fault}
        if other_fault is not None and rnd == self.round:
            faults[other] = other_fault
        winner, losers = rules.losers_of_faults(list(faults))
        self._finish(Verdict(winner, losers, "fault", faults))

    def _verify_signed(self, party: str, signed: SignedMessage) -> None:
        kind, _ = self._round_query()
        expected = MessageContext(self.spec.job_id, self.dispute_id, self.round, kind)
        try:
            verify_message(signed, expected)
        except ProofError as exc:
            raise Fault("invalid_signature", f"answer does not verify: {exc}") from exc
        if signed.signer.hex() != self.data["keys"][party]:
            raise Fault("invalid_signature", "answer is signed by another key than the result")

    def _set_outcome(self, party: str, outcome: Any) -> None:
        if isinstance(outcome, Fault):
            self.outcomes[party] = {"fault": {"code": outcome.code, "detail": outcome.detail,
                                              "evidence": outcome.evidence}}  # fmt: skip
        else:
            self.outcomes[party] = {"ok": outcome}
        if rules.round_complete(PARTIES, self.outcomes):
            self._complete_round()

    # --- per-phase checks -----------------------------------------------------------------

    def _check_answer(self, party: str, payload: dict[str, Any], blobs: Any,
                      blobs_available: bool) -> Any:  # fmt: skip
        return check_phase_answer(self, party, payload, blobs, blobs_available)

    # --- transitions ----------------------------------------------------------------------

    def _complete_round(self) -> None:
        faulted = [p for p in PARTIES if "fault" in self.outcomes[p]]
        if faulted:
            winner, losers = rules.losers_of_faults(faulted)
            faults = {p: self.outcomes[p]["fault"] for p in faulted}
            self._finish(Verdict(winner, losers, "fault", faults))
            return
        ok = {p: self.outcomes[p]["ok"] for p in PARTIES}
        self.outcomes = {}
        getattr(self, f"_after_{self.phase}")(ok)
        if not self.done:
            self.round += 1

    def _after_step_descent(self, ok: dict[str, Any]) -> None:
        self._descent.record(*(tuple(bytes.fromhex(h) for h in ok[p]) for p in PARTIES))
        if self._descent.done:
            self.phase = "step_leaves"

    def _after_step_leaves(self, ok: dict[str, Any]) -> None:
        k = self._descent.leaf_index
        if k == 0:
            expected = JobContext.from_spec(self.spec).initial_state_root().hex()
            claims = {p: ok[p]["0"] for p in PARTIES}
            winner, losers = rules.rule_on_value(expected, claims)
            self._finish(Verdict(winner, losers, "initial_state",
                                 ruling={"expected_state_0": expected, "claims": claims}))
            return
        self.data["step"] = k
        self.data["prev_root"] = ok["a"][str(k - 1)]
        self.data["claimed"] = {p: ok[p][str(k)] for p in PARTIES}
        self.data["step_descent"] = self._descent.to_json()
        self.phase = "graph_open"

    def _after_graph_open(self, ok: dict[str, Any]) -> None:
        self.data["graph_roots"] = {p: ok[p]["root"] for p in PARTIES}
        roots = [bytes.fromhex(ok[p]["root"]) for p in PARTIES]
        self._descent = Descent.start(len(self.expected()), *roots)
        self.phase = "graph_descent"

    def _after_graph_descent(self, ok: dict[str, Any]) -> None:
        self._after_step_descent(ok)
        if self._descent.done:
            self.data["node"] = self._descent.leaf_index
            self.phase = "graph_leaf"

    def _after_graph_leaf(self, ok: dict[str, Any]) -> None:
        self.data["nodes"] = ok
        self.phase = "inputs"

    def _after_inputs(self, ok: dict[str, Any]) -> None:
        del ok
        k = self.data["node"]
        node = self.expected()[k]
        inputs = self._inputs["a"]
        claims = {p: self.data["nodes"][p]["out"] for p in PARTIES}
        digests = {key: v["digest"] for key, v in inputs.items()}
        if node["op"] == COMMIT_OP:
            recomputed = recompute_state_root(JobContext.from_spec(self.spec),
                                              node["args"]["entries"], self.data["step"],
                                              digests)  # fmt: skip
            reason = "recomputed_commit"
        elif any(v["tensor"] is None for v in inputs.values()) and inputs:
            recomputed = self.data.get("trusted_recomputation")
            if recomputed is None:
                raise InvalidEvent("input tensors are needed to recompute the operator")
            reason = "recomputed_operator"
        else:
            tensors = {key: v["tensor"] for key, v in inputs.items()}
            recomputed = recompute_operator(self.spec.backend, node["op"], node["args"], tensors)
            reason = "recomputed_operator"
        winner, losers = rules.rule_on_value(recomputed, claims)
        ruling = {"step": self.data["step"], "node": k, "op": node["op"], "nodes":
                  self.data["nodes"], "input_digests": digests, "recomputed": recomputed}
        self._finish(Verdict(winner, losers, reason, ruling=ruling))

    def _finish(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.phase = "done"
        self.outcomes = {}

    # --- derived --------------------------------------------------------------------------

    def expected(self) -> list[dict[str, Any]]:
        """The arbiter's own shape-only replay of the disputed step (cached, not stored)."""
        if self._expected is None:
            ctx = JobContext.from_spec(self.spec)
            self._expected = expected_structure(ctx, self.data["step"])
        return self._expected

    @property
    def rounds(self) -> int:
        return self.round

    # --- persistence ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "spec": self.spec.to_dict(),
            "results": {p: self.results[p].to_json() for p in PARTIES},
            "dispute_id": self.dispute_id,
            "deadline_s": self.deadline_s,
            "transcript": self.transcript,
            "verdict": self.verdict.to_json() if self.verdict else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, blobs_available: bool = True,
                  trusted_recomputation: list[str] | None = None) -> DisputeState:  # fmt: skip
        """Rebuild a dispute by replaying its transcript (every check runs again).

        The stored form is the opening plus the event log: replaying it is how a resumed
        arbiter and an offline verifier both reach the same state.
        """
        if data.get("version") != STATE_VERSION:
            raise InvalidEvent(f"unknown dispute state version {data.get('version')!r}")
        state = cls(JobSpec.from_mapping(data["spec"]),
                    SignedMessage.from_json(data["results"]["a"]),
                    SignedMessage.from_json(data["results"]["b"]),
                    deadline_s=data["deadline_s"], dispute_id=data["dispute_id"])  # fmt: skip
        if trusted_recomputation is not None:
            state.data["trusted_recomputation"] = trusted_recomputation
        for event in data["transcript"]:
            state.apply(event, blobs_available=blobs_available)
        return state
