"""Offline verification of a verdict certificate (what ``verde verify CERT`` calls).

A verdict certificate is checked without contacting anyone: the arbiter's Ed25519 signature
(``proofs.verify_certificate``, optionally against a set of trusted arbiter keys), then the
whole dispute is replayed from its transcript with the arbiter's own state machine — every
provider signature, Merkle proof, structure check against a fresh shape-only replay of the
disputed step, and, when the input tensors are bundled, the one disputed operator recomputed
(Verde, Arun et al. 2025). The certificate is accepted only if that replay reaches the stated
verdict.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proofs import VerifiedCertificate, VerifyKey, bls, verify_certificate
from proofs.errors import ProofError
from verde.protocol.dispute.certificate import VERDICT_KIND, replay_body
from verde.protocol.dispute.committee import Committee, CommitteeError, cosign_certificate
from verde.protocol.dispute.errors import InvalidVerdictCertificate
from verde.protocol.dispute.state import DisputeState


@dataclass(frozen=True)
class VerifiedVerdict:
    """What a valid certificate establishes."""

    job_id: str
    dispute_id: str
    arbiter: str
    winner: str | None
    losers: dict[str, str]
    reason: str
    recomputed: bool
    verdict: dict[str, Any]
    #: BLS public keys (hex) of the committee members who co-signed (empty without one).
    committee_signers: tuple[str, ...] = ()


def verify_verdict_certificate(
    doc: Mapping[str, Any] | str | bytes | Path,
    *,
    trusted_arbiters: Collection[VerifyKey | str] | None = None,
    recompute: bool = True,
    trusted_committee: Committee | None = None,
) -> VerifiedVerdict:
    """Check a verdict certificate (a dict, JSON text, or a path); raise if it is not valid.

    Raises ``proofs.errors.ProofError`` subclasses for signature/format problems and
    ``InvalidVerdictCertificate`` (or ``proofs.errors.InvalidCertificateBody``) when the body
    does not replay to its verdict. ``recompute=False`` skips re-executing the operator.

    A dispute run by a committee (its opening names one) is accepted only with co-signatures
    of at least its threshold of members; with ``trusted_committee`` the dispute's committee
    must be that one (``CommitteeError`` otherwise).
    """
    checked, state = _replay(doc, trusted_arbiters, recompute)
    verdict = state.verdict
    assert verdict is not None
    signers = _check_committee(state.committee, checked.committee, trusted_committee)
    keys = state.progress.keys or {p: state.results[p].signer.hex() for p in ("a", "b")}
    return VerifiedVerdict(
        job_id=state.spec.job_id,
        dispute_id=state.dispute_id,
        arbiter=checked.signer.hex(),
        winner=keys[verdict.winner] if verdict.winner else None,
        losers={p: keys[p] for p in verdict.losers},
        reason=verdict.reason,
        recomputed=recompute and checked.body.get("bundled_inputs", False),
        verdict=verdict.to_json(),
        committee_signers=tuple(pk.hex() for pk in signers),
    )


def check_and_cosign(key: bls.BlsSecretKey, certificate: Mapping[str, Any]) -> bytes:
    """A committee member's co-signature of ``certificate``, given only after checking it like
    any verifier (every signature, proof, attestation, and the one operator recomputed), short
    of the co-signatures it is being asked for."""
    _replay(certificate, None, True)
    return cosign_certificate(key, certificate)


def _replay(doc: Mapping[str, Any] | str | bytes | Path,
            trusted_arbiters: Collection[VerifyKey | str] | None,
            recompute: bool) -> tuple[VerifiedCertificate, DisputeState]:
    """The issuer's signature checked and the dispute replayed from the certificate body."""
    if isinstance(doc, Path):
        try:
            document = json.loads(doc.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidVerdictCertificate(f"cannot read certificate {doc}: {exc}") from exc
    else:
        document = doc
    checked = verify_certificate(document, trusted_signers=trusted_arbiters,
                                 require_checker=False)
    if checked.kind != VERDICT_KIND:
        raise InvalidVerdictCertificate(
            f"certificate kind is {checked.kind!r}, expected {VERDICT_KIND!r}"
        )
    try:
        state = replay_body(checked.body, recompute=recompute)
    except (ProofError, InvalidVerdictCertificate):
        raise
    except Exception as exc:  # any failure to replay is a rejection, with its reason
        raise InvalidVerdictCertificate(f"certificate body does not replay: {exc}") from exc
    return checked, state


def _check_committee(committee: Committee | None, signers: tuple[bytes, ...],
                     trusted: Committee | None) -> tuple[bytes, ...]:
    """The co-signers of a certificate (their aggregate was checked by ``proofs``) against the
    dispute's committee and the one the verifier trusts."""
    if trusted is not None and (committee is None or
                                {m.public_key for m in committee.members}
                                != {m.public_key for m in trusted.members}
                                or committee.threshold < trusted.threshold):
        raise CommitteeError("the dispute was not run by the committee this verifier trusts")
    if committee is None:
        return signers
    strangers = [pk.hex()[:16] for pk in signers if pk not in
                 {m.public_key for m in committee.members}]
    if strangers:
        raise CommitteeError(f"co-signers {strangers} are not members of the dispute's committee")
    if len(set(signers)) < committee.threshold:
        raise CommitteeError(f"{len(set(signers))} members co-signed the verdict; the committee's "
                             f"threshold is {committee.threshold}")
    return signers

