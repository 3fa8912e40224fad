"""Verdict certificates: the whole dispute, signed by the arbiter, checkable offline.

The body is the dispute's opening (job spec, both signed results, dispute id) and its event
log (every signed answer, in order, with the tensors of the inputs round bundled unless
``bundle_inputs=False``), plus the verdict. It therefore holds everything DESIGN.md §3 asks
for — signed commitments, the descent transcript, the disputed node, its inputs' digests and
proofs, the recomputed output digest — inside the signed answers and the verdict's ruling.

Checking replays the dispute with the same state machine the arbiter ran: every signature,
Merkle proof and structure check is redone, and with bundled inputs the one operator is
recomputed. The certificate is accepted only if the replay reaches exactly the stated
verdict (Verde, Arun et al. 2025; Canetti, Riva, Rothblum 2011). Without bundled tensors the
verifier checks everything else and takes the recomputed digest from the arbiter's signed
ruling. Timeouts are the arbiter's word (signed by it, nobody else can sign an absence).
"""

from __future__ import annotations

from typing import Any

from proofs import SigningKey, issue_certificate, register_certificate_checker
from proofs.certificate import registered_certificate_kinds
from verde.protocol.dispute.errors import DisputeFinished, InvalidVerdictCertificate
from verde.protocol.dispute.state import STATE_VERSION, DisputeState

VERDICT_KIND = "verde.dispute-verdict"
BODY_VERSION = 2


def certificate_body(state: DisputeState, *, bundle_inputs: bool = True) -> dict[str, Any]:
    """The certificate body of a finished dispute."""
    if state.verdict is None:
        raise InvalidVerdictCertificate("the dispute has no verdict yet")
    doc = state.to_json()
    transcript = doc["transcript"]
    if not bundle_inputs:
        transcript = [{k: v for k, v in e.items() if k != "blobs"} for e in transcript]
    return {
        "version": BODY_VERSION,
        "spec": doc["spec"],
        "dispute_id": doc["dispute_id"],
        "results": doc["results"],
        "transcript": transcript,
        "bundled_inputs": bundle_inputs,
        "verdict": doc["verdict"],
        **({"committee": doc["committee"]} if "committee" in doc else {}),
    }


def issue_verdict_certificate(
    state: DisputeState, arbiter: SigningKey, *, bundle_inputs: bool = True
) -> dict[str, Any]:
    """Sign the certificate of a finished dispute with the arbiter's key."""
    return issue_certificate(VERDICT_KIND, certificate_body(state, bundle_inputs=bundle_inputs),
                             arbiter)  # fmt: skip


def replay_body(body: dict[str, Any], *, recompute: bool = True) -> DisputeState:
    """Replay a certificate body; raise ``InvalidVerdictCertificate`` unless it reproduces."""
    expected_keys = {"version", "spec", "dispute_id", "results", "transcript", "bundled_inputs",
                     "verdict"}  # fmt: skip
    if set(body) - {"committee"} != expected_keys or body["version"] != BODY_VERSION:
        raise InvalidVerdictCertificate(
            f"body must have exactly the fields {sorted(expected_keys)} (and a committee)"
        )
    bundled = body["bundled_inputs"]
    if not isinstance(bundled, bool):
        raise InvalidVerdictCertificate("bundled_inputs must be a boolean")
    verdict = body["verdict"]
    if not isinstance(verdict, dict):
        raise InvalidVerdictCertificate("verdict must be an object")
    use_blobs = bundled and recompute
    trusted = None if use_blobs else verdict.get("ruling", {}).get("recomputed")
    doc = {"version": STATE_VERSION, "spec": body["spec"], "results": body["results"],
           "dispute_id": body["dispute_id"], "deadline_s": 60.0, "transcript": [],
           **({"committee": body["committee"]} if "committee" in body else {})}  # fmt: skip
    state = DisputeState.from_json(doc, blobs_available=use_blobs,
                                   trusted_recomputation=trusted)  # fmt: skip
    for i, event in enumerate(body["transcript"]):
        if not bundled and isinstance(event, dict) and "blobs" in event:
            raise InvalidVerdictCertificate("tensors present although bundled_inputs is false")
        try:
            state.apply(event, blobs_available=use_blobs)
        except DisputeFinished as exc:
            raise InvalidVerdictCertificate(
                f"transcript event {i} comes after the verdict was reached"
            ) from exc
    if state.verdict is None:
        raise InvalidVerdictCertificate("the transcript does not reach a verdict")
    if state.verdict.to_json() != verdict:
        raise InvalidVerdictCertificate("replaying the transcript gives another verdict")
    return state


def check_verdict_body(body: dict[str, Any]) -> dict[str, Any]:
    """The body checker registered with ``proofs`` for ``verde.dispute-verdict``."""
    state = replay_body(body)
    return state.verdict.to_json() if state.verdict else {}


def ensure_registered() -> None:
    """Register the body checker with proofs (idempotent)."""
    if VERDICT_KIND not in registered_certificate_kinds():
        register_certificate_checker(VERDICT_KIND, check_verdict_body)
