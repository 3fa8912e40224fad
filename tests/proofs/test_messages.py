"""Signed messages: context binding, tampering, JSON round trips, equivocation proofs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import (
    ContextMismatch,
    EquivocationProof,
    InvalidSignature,
    MalformedInput,
    MessageContext,
    NotAnEquivocation,
    ProofError,
    SignedMessage,
    SigningKey,
    UnsupportedVersion,
    WrongSigner,
    canonical_json,
    check_equivocation,
    sign_message,
    verify_equivocation,
    verify_message,
)

KEY = SigningKey.from_seed(bytes(range(32)))
OTHER = SigningKey.from_seed(bytes(range(1, 33)))
CTX = MessageContext(job_id="job-1", dispute_id="d-7", round=3, kind="descent.children")
PAYLOAD = {"left": "aa" * 32, "right": "bb" * 32}


def test_signed_bytes_are_the_documented_canonical_encoding() -> None:
    msg = sign_message(KEY, CTX, PAYLOAD)
    expected = (
        '{"context":{"dispute_id":"d-7","job_id":"job-1","kind":"descent.children","round":3},'
        '"domain":"verde/signed-message/v1","payload":{"left":"'
        + "aa" * 32
        + '","right":"'
        + "bb" * 32
        + '"},"signer":"'
        + KEY.public_key.hex()
        + '"}'
    ).encode()
    assert msg.signed_bytes() == expected
    KEY.public_key.verify(msg.signature, expected)
    assert sign_message(KEY, CTX, PAYLOAD).signature == msg.signature  # deterministic


def test_verify_and_context_binding() -> None:
    msg = sign_message(KEY, CTX, PAYLOAD)
    verify_message(msg)
    verify_message(msg, CTX, expected_signer=KEY.public_key)
    for other in (
        MessageContext("job-2", "d-7", 3, "descent.children"),
        MessageContext("job-1", "d-8", 3, "descent.children"),
        MessageContext("job-1", "d-7", 4, "descent.children"),
        MessageContext("job-1", "d-7", 3, "descent.leaf"),
        MessageContext("job-1", None, 3, "descent.children"),
    ):
        with pytest.raises(ContextMismatch):
            verify_message(msg, other)
        replayed = SignedMessage(other, msg.payload, msg.signer, msg.signature)
        with pytest.raises(InvalidSignature):  # the signature does not carry over
            verify_message(replayed)
    with pytest.raises(WrongSigner):
        verify_message(msg, CTX, expected_signer=OTHER.public_key)
    forged = SignedMessage(CTX, msg.payload, OTHER.public_key, msg.signature)
    with pytest.raises(InvalidSignature):
        verify_message(forged)


def _flip(data: bytes, pos: int, mask: int) -> bytes:
    pos %= len(data)
    return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1 :]


@settings(max_examples=150, deadline=None)
@given(pos=st.integers(0, 10**6), mask=st.integers(1, 255))
def test_flipping_any_byte_of_a_serialised_message_fails(pos: int, mask: int) -> None:
    msg = sign_message(KEY, CTX, PAYLOAD)
    text = canonical_json(msg.to_json())
    back = SignedMessage.from_json(text)
    verify_message(back, CTX)
    with pytest.raises(ProofError):
        verify_message(SignedMessage.from_json(_flip(text, pos, mask)), CTX)


@settings(max_examples=60, deadline=None)
@given(pos=st.integers(0, 10**6), mask=st.integers(1, 255))
def test_flipping_any_byte_of_signature_or_signed_bytes_fails(pos: int, mask: int) -> None:
    msg = sign_message(KEY, CTX, PAYLOAD)
    with pytest.raises(InvalidSignature):
        KEY.public_key.verify(_flip(msg.signature, pos, mask), msg.signed_bytes())
    with pytest.raises(InvalidSignature):
        KEY.public_key.verify(msg.signature, _flip(msg.signed_bytes(), pos, mask))


def test_json_roundtrip_and_malformed_messages() -> None:
    msg = sign_message(KEY, CTX, {"n": 1, "t": (1, 2), "nested": {"b": None}})
    doc = json.loads(json.dumps(msg.to_json()))
    assert SignedMessage.from_json(doc) == msg
    verify_message(SignedMessage.from_json(doc))
    with pytest.raises(UnsupportedVersion):
        SignedMessage.from_json({**doc, "version": 2})
    for bad in (
        {**doc, "signature": doc["signature"][:-2]},
        {**doc, "signature": "zz" + doc["signature"][2:]},
        {**doc, "signer": "00"},
        {**doc, "payload": [1]},
        {**doc, "context": {**doc["context"], "round": -1}},
        {**doc, "context": {**doc["context"], "round": True}},
        {**doc, "context": {**doc["context"], "job_id": ""}},
        {**doc, "extra": 0},
        {k: v for k, v in doc.items() if k != "payload"},
        '{"version": 1, "version": 1}',
        '{"version": NaN}',
        b"\xff\xfe",
    ):
        with pytest.raises(MalformedInput):
            SignedMessage.from_json(bad)


def test_payload_must_be_canonical_json() -> None:
    for bad in ({"x": float("nan")}, {"x": b"raw"}, {1: "x"}, {"x": {1, 2}}, ["not", "dict"]):
        with pytest.raises(MalformedInput):
            sign_message(KEY, CTX, bad)  # type: ignore[arg-type]


def test_equivocation_is_detected_and_checkable() -> None:
    m1 = sign_message(KEY, CTX, {"left": "00" * 32})
    m2 = sign_message(KEY, CTX, {"left": "11" * 32})
    proof = check_equivocation(m2, m1)
    assert proof == check_equivocation(m1, m2)  # canonical order
    assert verify_equivocation(proof) == KEY.public_key
    back = EquivocationProof.from_json(json.dumps(proof.to_json()))
    assert verify_equivocation(back) == KEY.public_key


def test_non_equivocations_are_rejected() -> None:
    m1 = sign_message(KEY, CTX, {"left": "00" * 32})
    same = sign_message(KEY, CTX, {"left": "00" * 32})
    other_signer = sign_message(OTHER, CTX, {"left": "11" * 32})
    other_round = sign_message(KEY, MessageContext("job-1", "d-7", 4, "descent.children"), {"x": 1})
    for m2 in (same, other_signer, other_round):
        with pytest.raises(NotAnEquivocation):
            check_equivocation(m1, m2)
    forged = SignedMessage(CTX, {"left": "11" * 32}, KEY.public_key, m1.signature)
    with pytest.raises(InvalidSignature):
        check_equivocation(m1, forged)
    with pytest.raises(InvalidSignature):
        verify_equivocation(EquivocationProof(m1, forged))
