"""Signed protocol messages bound to their context, and proofs of equivocation.

Why context binding: an answer that is honest in one place must not be usable in another. A
party's child-hash answer in round 3 of dispute X is signed over the bytes

    ``canonical_json({"domain": "verde/signed-message/v1", "context": {job_id, dispute_id,
    round, kind}, "signer": <public key hex>, "payload": <payload>})``

so the signature cannot be replayed for another job, dispute, round or message kind (replay
binding), and the signer's key is part of what is signed. ``canonical_json`` makes the bytes
unique, so a signature means exactly one (context, payload).

Why equivocation proofs: the protocol asks each party for one answer per context. Two validly
signed messages by the same key for the same context with different payloads are evidence
anyone can check offline that the party lied to someone (Verde: a party that equivocates loses
at once). Payloads are compared by their canonical bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proofs.canonical import (
    as_json_object,
    canonical_json,
    hex_decode,
    require_field,
    require_keys,
)
from proofs.errors import (
    ContextMismatch,
    MalformedInput,
    NotAnEquivocation,
    UnsupportedVersion,
    WrongSigner,
)
from proofs.identity import SIGNATURE_SIZE, SigningKey, VerifyKey

MESSAGE_DOMAIN = "verde/signed-message/v1"
MESSAGE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class MessageContext:
    """Where a message belongs: job, dispute (or None), round (or None) and message kind."""

    job_id: str
    dispute_id: str | None
    round: int | None
    kind: str

    def __post_init__(self) -> None:
        for name in ("job_id", "kind"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise MalformedInput(
                    f"MessageContext.{name} must be a non-empty str, got {value!r}"
                )
        if self.dispute_id is not None and not isinstance(self.dispute_id, str):
            raise MalformedInput(
                f"MessageContext.dispute_id must be str or None, got {self.dispute_id!r}"
            )
        if self.round is not None and (
            not isinstance(self.round, int) or isinstance(self.round, bool) or self.round < 0
        ):
            raise MalformedInput(
                f"MessageContext.round must be an int >= 0 or None, got {self.round!r}"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "dispute_id": self.dispute_id,
            "round": self.round,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: Any) -> MessageContext:
        what = "MessageContext"
        obj = as_json_object(data, what)
        require_keys(obj, {"job_id", "dispute_id", "round", "kind"}, what)
        return cls(
            job_id=require_field(obj, "job_id", str, what),
            dispute_id=require_field(obj, "dispute_id", (str, type(None)), what),
            round=require_field(obj, "round", (int, type(None)), what),
            kind=require_field(obj, "kind", str, what),
        )


def signed_bytes(context: MessageContext, signer: VerifyKey, payload: Mapping[str, Any]) -> bytes:
    """The exact bytes an Ed25519 signature of a protocol message covers."""
    if not isinstance(context, MessageContext):
        raise MalformedInput(f"context must be a MessageContext, got {type(context).__name__}")
    if not isinstance(payload, dict):
        raise MalformedInput(f"payload must be a JSON-able dict, got {type(payload).__name__}")
    return canonical_json(
        {
            "domain": MESSAGE_DOMAIN,
            "context": context.to_json(),
            "signer": signer.hex(),
            "payload": payload,
        }
    )


@dataclass(frozen=True)
class SignedMessage:
    """A payload signed by ``signer`` for ``context``. Check it with ``verify_message``."""

    context: MessageContext
    payload: dict[str, Any]
    signer: VerifyKey
    signature: bytes

    def signed_bytes(self) -> bytes:
        return signed_bytes(self.context, self.signer, self.payload)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (``version``, ``context``, ``payload``, ``signer``, ``signature``)."""
        return {
            "version": MESSAGE_FORMAT_VERSION,
            "context": self.context.to_json(),
            "payload": self.payload,
            "signer": self.signer.hex(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> SignedMessage:
        """Parse ``to_json`` output (a dict or JSON text). Does not verify: see verify_message."""
        what = "SignedMessage"
        obj = as_json_object(data, what)
        version = require_field(obj, "version", int, what)
        if version != MESSAGE_FORMAT_VERSION:
            raise UnsupportedVersion(f"{what}: unknown version {version!r}")
        require_keys(obj, {"version", "context", "payload", "signer", "signature"}, what)
        payload = require_field(obj, "payload", dict, what)
        canonical_json(payload)  # reject what could never have been signed, with a clear error
        return cls(
            context=MessageContext.from_json(require_field(obj, "context", dict, what)),
            payload=payload,
            signer=VerifyKey.from_hex(require_field(obj, "signer", str, what)),
            signature=hex_decode(
                require_field(obj, "signature", str, what), f"{what}.signature", SIGNATURE_SIZE
            ),
        )


def sign_message(
    key: SigningKey, context: MessageContext, payload: dict[str, Any]
) -> SignedMessage:
    """Sign ``payload`` (a JSON-able dict; bytes as hex strings) for ``context``."""
    if not isinstance(key, SigningKey):
        raise MalformedInput(f"key must be a SigningKey, got {type(key).__name__}")
    message = signed_bytes(context, key.public_key, payload)
    # Keep the JSON form of what was signed (tuples become lists), so to_json/from_json
    # round-trips to an equal object and later changes to the caller's dict cannot leak in.
    stored = json.loads(message)["payload"]
    return SignedMessage(context, stored, key.public_key, key.sign(message))


def verify_message(
    signed: SignedMessage,
    expected_context: MessageContext | None = None,
    *,
    expected_signer: VerifyKey | None = None,
) -> None:
    """Check the signature, then the context and signer if given.

    Raises ``InvalidSignature``, ``ContextMismatch`` (authentic, but signed for another place)
    or ``WrongSigner``.
    """
    if not isinstance(signed, SignedMessage):
        raise MalformedInput(f"expected a SignedMessage, got {type(signed).__name__}")
    signed.signer.verify(signed.signature, signed.signed_bytes())
    if expected_context is not None and signed.context != expected_context:
        raise ContextMismatch(
            f"message was signed for {signed.context}, expected {expected_context}",
            expected=expected_context,
            actual=signed.context,
        )
    if expected_signer is not None and signed.signer != expected_signer:
        raise WrongSigner(
            f"message signed by {signed.signer.hex()}, expected {expected_signer.hex()}"
        )


@dataclass(frozen=True)
class EquivocationProof:
    """Two validly signed, conflicting messages by one key for one context."""

    first: SignedMessage
    second: SignedMessage

    @property
    def signer(self) -> VerifyKey:
        return self.first.signer

    @property
    def context(self) -> MessageContext:
        return self.first.context

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MESSAGE_FORMAT_VERSION,
            "first": self.first.to_json(),
            "second": self.second.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> EquivocationProof:
        """Parse ``to_json`` output. Does not verify: see ``verify_equivocation``."""
        what = "EquivocationProof"
        obj = as_json_object(data, what)
        version = require_field(obj, "version", int, what)
        if version != MESSAGE_FORMAT_VERSION:
            raise UnsupportedVersion(f"{what}: unknown version {version!r}")
        require_keys(obj, {"version", "first", "second"}, what)
        return cls(
            SignedMessage.from_json(require_field(obj, "first", dict, what)),
            SignedMessage.from_json(require_field(obj, "second", dict, what)),
        )


def check_equivocation(m1: SignedMessage, m2: SignedMessage) -> EquivocationProof:
    """Return the proof that ``m1`` and ``m2`` are an equivocation, or raise.

    Raises ``InvalidSignature`` if either does not verify and ``NotAnEquivocation`` if the
    signers or contexts differ or the payloads are the same. The two messages are put in a
    canonical order (by payload bytes), so the same pair always gives the same proof.
    """
    proof = _ordered(m1, m2)
    verify_equivocation(proof)
    return proof


def _ordered(m1: SignedMessage, m2: SignedMessage) -> EquivocationProof:
    for m in (m1, m2):
        if not isinstance(m, SignedMessage):
            raise MalformedInput(f"expected SignedMessage, got {type(m).__name__}")
    if canonical_json(m2.payload) < canonical_json(m1.payload):
        m1, m2 = m2, m1
    return EquivocationProof(m1, m2)


def verify_equivocation(proof: EquivocationProof) -> VerifyKey:
    """Check an equivocation proof; return the key that equivocated. Raises if it is not one."""
    if not isinstance(proof, EquivocationProof):
        raise MalformedInput(f"expected an EquivocationProof, got {type(proof).__name__}")
    first, second = proof.first, proof.second
    verify_message(first)
    verify_message(second)
    if first.signer != second.signer:
        raise NotAnEquivocation("the two messages are signed by different keys")
    if first.context != second.context:
        raise NotAnEquivocation(f"different contexts: {first.context} and {second.context}")
    if canonical_json(first.payload) == canonical_json(second.payload):
        raise NotAnEquivocation("the two messages carry the same payload")
    return first.signer
