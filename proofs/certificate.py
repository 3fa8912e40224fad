"""Certificates: self-contained, versioned JSON documents that anyone can check offline.

Why: a verdict (or a result) must convince someone who was not there. A certificate carries
its body (for a verdict: the job spec, both signed commitments, the descent transcript, the
disputed node, its inputs with Merkle proofs, the recomputed output digest — DESIGN.md §3), is
signed by its issuer with Ed25519, and may be attested by a BLS committee
(draft-irtf-cfrg-bls-signature, proof-of-possession scheme).

Format (version 1)::

    {"format": "verde-certificate", "version": 1, "kind": "<kind>", "body": {...},
     "signer": "<Ed25519 public key hex>", "signature": "<hex>",
     "committee": {"members": [{"public_key": "<hex>", "pop": "<hex>"}, ...],
                   "aggregate_signature": "<hex>"}}          # "committee" is optional

The Ed25519 signature covers ``canonical_json({"domain": "verde/certificate/v1", "format",
"version", "kind", "body", "signer"})``; the committee signs
``b"verde/certificate-committee/v1\\x00" || SHA-256(those same bytes)``. Distinct domain
strings keep certificate signatures from being replayed as protocol messages and the other way
round. Unknown top-level fields are rejected, so nothing unsigned rides along.

What a body *means* is the protocol's business (verde/), which proofs must not import. So
proofs keeps a registry of body checkers by kind: verde calls
``register_certificate_checker(kind, fn)`` at import, and ``verify_certificate`` runs ``fn(body)``
after all signatures verify. A kind with no checker is rejected (``UnknownCertificateKind``)
unless the caller passes ``require_checker=False``. A checker raises to reject: a ``ProofError``
passes through unchanged, any other exception is wrapped in ``InvalidCertificateBody`` (with the
original as ``__cause__``); what it returns is given back as ``VerifiedCertificate.checked``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proofs import bls
from proofs.canonical import (
    as_json_object,
    canonical_json,
    hex_decode,
    require_field,
    require_keys,
)
from proofs.errors import (
    InvalidCertificate,
    InvalidCertificateBody,
    InvalidSignature,
    MalformedInput,
    ProofError,
    RogueKeyError,
    UnknownCertificateKind,
    UnsupportedVersion,
    UntrustedSigner,
)
from proofs.identity import SIGNATURE_SIZE, SigningKey, VerifyKey

CERTIFICATE_FORMAT = "verde-certificate"
CERTIFICATE_VERSION = 1
CERTIFICATE_DOMAIN = "verde/certificate/v1"
COMMITTEE_DOMAIN = b"verde/certificate-committee/v1\x00"
_TOP_LEVEL = {"format", "version", "kind", "body", "signer", "signature", "committee"}

BodyChecker = Callable[[dict[str, Any]], Any]
_CHECKERS: dict[str, BodyChecker] = {}


def register_certificate_checker(kind: str, fn: BodyChecker, *, replace: bool = False) -> None:
    """Register ``fn(body)`` as the checker of certificates of ``kind``.

    Raises ``ValueError`` if ``kind`` already has a different checker and ``replace`` is false.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"certificate kind must be a non-empty str, got {kind!r}")
    if not callable(fn):
        raise ValueError(f"checker for {kind!r} must be callable")
    if not replace and _CHECKERS.get(kind, fn) is not fn:
        raise ValueError(f"a checker for certificate kind {kind!r} is already registered")
    _CHECKERS[kind] = fn


def unregister_certificate_checker(kind: str) -> None:
    """Remove the checker of ``kind`` (no error if there is none)."""
    _CHECKERS.pop(kind, None)


def registered_certificate_kinds() -> tuple[str, ...]:
    return tuple(sorted(_CHECKERS))


@dataclass(frozen=True)
class VerifiedCertificate:
    """What ``verify_certificate`` vouches for after every check passed."""

    kind: str
    body: dict[str, Any]
    signer: VerifyKey
    committee: tuple[bytes, ...]  # BLS public keys that attested, empty if none
    checked: Any  # what the kind's body checker returned (None without a checker)


def _signed_bytes(kind: str, body: Mapping[str, Any], signer_hex: str) -> bytes:
    return canonical_json(
        {
            "domain": CERTIFICATE_DOMAIN,
            "format": CERTIFICATE_FORMAT,
            "version": CERTIFICATE_VERSION,
            "kind": kind,
            "body": body,
            "signer": signer_hex,
        }
    )


def issue_certificate(kind: str, body: dict[str, Any], signer: SigningKey) -> dict[str, Any]:
    """Sign ``body`` (a JSON-able dict; bytes as hex) as a certificate of ``kind``."""
    if not isinstance(kind, str) or not kind:
        raise MalformedInput(f"certificate kind must be a non-empty str, got {kind!r}")
    if not isinstance(body, dict):
        raise MalformedInput(f"certificate body must be a dict, got {type(body).__name__}")
    if not isinstance(signer, SigningKey):
        raise MalformedInput(f"signer must be a SigningKey, got {type(signer).__name__}")
    message = _signed_bytes(kind, body, signer.public_key.hex())
    return {
        "format": CERTIFICATE_FORMAT,
        "version": CERTIFICATE_VERSION,
        "kind": kind,
        "body": json.loads(message)["body"],
        "signer": signer.public_key.hex(),
        "signature": signer.sign(message).hex(),
    }


def committee_message(doc: Mapping[str, Any] | str | bytes) -> bytes:
    """The bytes each committee member signs (with ``bls.sign``) to attest ``doc``."""
    parsed = _parse(doc)
    return COMMITTEE_DOMAIN + hashlib.sha256(parsed.signed).digest()


def attach_committee(
    doc: Mapping[str, Any], members: Sequence[tuple[bytes, bytes]], aggregate: bytes
) -> dict[str, Any]:
    """A copy of ``doc`` carrying a committee attestation (checked by ``verify_certificate``)."""
    out = dict(as_json_object(doc, "certificate"))
    out["committee"] = {
        "members": [
            {"public_key": bytes(pk).hex(), "pop": bytes(pop).hex()} for pk, pop in members
        ],
        "aggregate_signature": bytes(aggregate).hex(),
    }
    return out


@dataclass(frozen=True)
class _Parsed:
    kind: str
    body: dict[str, Any]
    signer: VerifyKey
    signature: bytes
    signed: bytes
    committee: dict[str, Any] | None


def _parse(doc: Mapping[str, Any] | str | bytes) -> _Parsed:
    what = "certificate"
    obj = as_json_object(doc, what)
    fmt = require_field(obj, "format", str, what)
    if fmt != CERTIFICATE_FORMAT:
        raise MalformedInput(f"{what}: format is {fmt!r}, expected {CERTIFICATE_FORMAT!r}")
    version = require_field(obj, "version", int, what)
    if version != CERTIFICATE_VERSION:
        raise UnsupportedVersion(
            f"{what}: version {version} is not supported (this code reads version "
            f"{CERTIFICATE_VERSION})"
        )
    require_keys(obj, _TOP_LEVEL, what)
    kind = require_field(obj, "kind", str, what)
    body = require_field(obj, "body", dict, what)
    signer_hex = require_field(obj, "signer", str, what)
    signer = VerifyKey.from_hex(signer_hex)
    signature = hex_decode(
        require_field(obj, "signature", str, what), f"{what}.signature", SIGNATURE_SIZE
    )
    committee = require_field(obj, "committee", dict, what) if "committee" in obj else None
    return _Parsed(
        kind, body, signer, signature, _signed_bytes(kind, body, signer.hex()), committee
    )


def _committee_members(committee: Mapping[str, Any]) -> tuple[list[tuple[bytes, bytes]], bytes]:
    what = "certificate.committee"
    require_keys(committee, {"members", "aggregate_signature"}, what)
    members = []
    for i, raw in enumerate(require_field(committee, "members", list, what)):
        where = f"{what}.members[{i}]"
        if not isinstance(raw, dict):
            raise MalformedInput(f"{where}: expected an object")
        require_keys(raw, {"public_key", "pop"}, where)
        members.append(
            (
                hex_decode(
                    require_field(raw, "public_key", str, where), where, bls.PUBLIC_KEY_SIZE
                ),
                hex_decode(require_field(raw, "pop", str, where), where, bls.SIGNATURE_SIZE),
            )
        )
    aggregate = hex_decode(
        require_field(committee, "aggregate_signature", str, what),
        f"{what}.aggregate_signature",
        bls.SIGNATURE_SIZE,
    )
    return members, aggregate


def verify_certificate(
    doc: Mapping[str, Any] | str | bytes,
    *,
    trusted_signers: Collection[VerifyKey | str] | None = None,
    trusted_committee: Collection[bytes] | None = None,
    require_checker: bool = True,
) -> VerifiedCertificate:
    """Check every signature and proof in ``doc``; return what it vouches for, or raise.

    Order: format and version (``MalformedInput``/``UnsupportedVersion``); the issuer's Ed25519
    signature (``InvalidSignature``) and trust (``UntrustedSigner`` if ``trusted_signers`` is
    given and lacks it); the committee (``RogueKeyError``/``InvalidSignature``; with
    ``trusted_committee`` a committee is required and every member must be in it); finally the
    body checker registered for the kind.
    """
    parsed = _parse(doc)
    parsed.signer.verify(parsed.signature, parsed.signed)
    if trusted_signers is not None and parsed.signer not in _key_set(trusted_signers):
        raise UntrustedSigner(f"certificate signer {parsed.signer.hex()} is not trusted")
    committee_keys: tuple[bytes, ...] = ()
    if parsed.committee is None and trusted_committee is not None:
        raise InvalidCertificate("a committee attestation is required but the certificate has none")
    if parsed.committee is not None:
        members, aggregate = _committee_members(parsed.committee)
        if trusted_committee is not None:
            allowed = {bytes(k) for k in trusted_committee}
            strangers = [pk.hex() for pk, _ in members if pk not in allowed]
            if strangers:
                raise UntrustedSigner(f"committee members not trusted: {strangers}")
        message = COMMITTEE_DOMAIN + hashlib.sha256(parsed.signed).digest()
        try:
            bls.verify_committee(members, message, aggregate)
        except (InvalidSignature, RogueKeyError) as exc:
            raise type(exc)(f"certificate committee: {exc}") from exc
        committee_keys = tuple(pk for pk, _ in members)
    checked = _run_checker(parsed.kind, parsed.body, require_checker)
    return VerifiedCertificate(parsed.kind, parsed.body, parsed.signer, committee_keys, checked)


def _key_set(keys: Collection[VerifyKey | str]) -> set[VerifyKey]:
    if isinstance(keys, str | bytes):
        raise MalformedInput("trusted_signers must be a collection of keys, not one string")
    return {k if isinstance(k, VerifyKey) else VerifyKey.from_hex(k) for k in keys}


def _run_checker(kind: str, body: dict[str, Any], require_checker: bool) -> Any:
    checker = _CHECKERS.get(kind)
    if checker is None:
        if require_checker:
            raise UnknownCertificateKind(
                f"no checker is registered for certificate kind {kind!r}; its body cannot be "
                f"checked (registered: {list(registered_certificate_kinds())})"
            )
        return None
    try:
        return checker(json.loads(canonical_json(body)))
    except ProofError:
        raise
    except Exception as exc:
        raise InvalidCertificateBody(f"{kind!r} certificate body rejected: {exc}") from exc
