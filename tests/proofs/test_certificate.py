"""Certificates: issue/verify, the checker registry hook, trust, tampering, versions, committee."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import (
    InvalidCertificate,
    InvalidCertificateBody,
    InvalidProof,
    InvalidSignature,
    MalformedInput,
    MerkleTree,
    ProofError,
    RogueKeyError,
    SigningKey,
    UnknownCertificateKind,
    UnsupportedVersion,
    UntrustedSigner,
    attach_committee,
    bls,
    canonical_json,
    committee_message,
    issue_certificate,
    register_certificate_checker,
    registered_certificate_kinds,
    unregister_certificate_checker,
    verify_certificate,
    verify_inclusion,
)
from proofs.merkle import InclusionProof

ISSUER = SigningKey.from_seed(b"\x07" * 32)
KIND = "test.inclusion"
LEAVES = [b"step-0", b"step-1", b"step-2"]
TREE = MerkleTree(LEAVES)


def _check_inclusion_body(body: dict[str, Any]) -> int:
    """A stand-in for verde's checkers: the body proves one leaf of a committed tree."""
    proof = InclusionProof.from_json(body["proof"])
    verify_inclusion(
        bytes.fromhex(body["root"]), bytes.fromhex(body["leaf"]), proof.index, proof.n_leaves, proof
    )
    return proof.index


def _body() -> dict[str, Any]:
    return {"root": TREE.root.hex(), "leaf": LEAVES[1].hex(), "proof": TREE.proof(1).to_json()}


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    register_certificate_checker(KIND, _check_inclusion_body)
    yield
    unregister_certificate_checker(KIND)


def test_issue_and_verify() -> None:
    doc = issue_certificate(KIND, _body(), ISSUER)
    assert doc["version"] == 1 and doc["format"] == "verde-certificate"
    for form in (doc, json.dumps(doc), json.dumps(doc, indent=2).encode()):
        result = verify_certificate(form, trusted_signers=[ISSUER.public_key])
        assert result.kind == KIND and result.checked == 1
        assert result.signer == ISSUER.public_key and result.committee == ()
    verify_certificate(doc, trusted_signers=[ISSUER.public_key.hex()])
    assert KIND in registered_certificate_kinds()


def test_body_checker_failures() -> None:
    body = _body()
    body["leaf"] = b"step-2".hex()
    doc = issue_certificate(KIND, body, ISSUER)  # validly signed, but the body is false
    with pytest.raises(InvalidProof):  # a ProofError from the checker passes through
        verify_certificate(doc)
    body = _body()
    del body["proof"]
    with pytest.raises(InvalidCertificateBody) as info:  # any other exception is wrapped
        verify_certificate(issue_certificate(KIND, body, ISSUER))
    assert isinstance(info.value.__cause__, KeyError)


def test_unknown_kind_and_registry_rules() -> None:
    doc = issue_certificate("nobody.checks.this", {"x": 1}, ISSUER)
    with pytest.raises(UnknownCertificateKind):
        verify_certificate(doc)
    assert verify_certificate(doc, require_checker=False).checked is None
    with pytest.raises(ValueError, match="already registered"):
        register_certificate_checker(KIND, lambda body: None)
    register_certificate_checker(KIND, _check_inclusion_body)  # same checker again is fine
    with pytest.raises(ValueError):
        register_certificate_checker("", _check_inclusion_body)


def test_trust_and_forgery() -> None:
    doc = issue_certificate(KIND, _body(), ISSUER)
    other = SigningKey.from_seed(b"\x08" * 32)
    with pytest.raises(UntrustedSigner):
        verify_certificate(doc, trusted_signers=[other.public_key])
    forged = {**doc, "signer": other.public_key.hex()}
    with pytest.raises(InvalidSignature):
        verify_certificate(forged)
    resigned = issue_certificate(KIND, _body(), other)
    with pytest.raises(InvalidSignature):  # a signature does not move between kinds
        verify_certificate({**resigned, "kind": "other.kind"}, require_checker=False)


def test_versions_and_malformed_documents() -> None:
    doc = issue_certificate(KIND, _body(), ISSUER)
    with pytest.raises(UnsupportedVersion, match="version 2"):
        verify_certificate({**doc, "version": 2})
    for bad in (
        {k: v for k, v in doc.items() if k != "signature"},
        {**doc, "format": "something-else"},
        {**doc, "signature": doc["signature"][:-4]},
        {**doc, "body": "not an object"},
        {**doc, "unsigned_note": "hi"},
        {**doc, "version": "1"},
        "[]",
        "not json",
    ):
        with pytest.raises(MalformedInput):
            verify_certificate(bad)
    with pytest.raises(MalformedInput):
        issue_certificate(KIND, {"x": float("nan")}, ISSUER)


def _flip(data: bytes, pos: int, mask: int) -> bytes:
    pos %= len(data)
    return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1 :]


@settings(max_examples=120, deadline=None)
@given(pos=st.integers(0, 10**6), mask=st.integers(1, 255))
def test_flipping_any_byte_of_a_certificate_fails(pos: int, mask: int) -> None:
    text = canonical_json(issue_certificate(KIND, _body(), ISSUER))
    verify_certificate(text)
    with pytest.raises(ProofError):
        verify_certificate(_flip(text, pos, mask))


@pytest.mark.slow
def test_committee_attestation() -> None:
    sks = [bls.keygen(bytes([i]) * 32) for i in (11, 12)]
    members = [(sk.public_key, bls.prove_possession(sk)) for sk in sks]
    doc = issue_certificate(KIND, _body(), ISSUER)
    message = committee_message(doc)
    aggregate = bls.aggregate_signatures([bls.sign(sk, message) for sk in sks])
    attested = attach_committee(doc, members, aggregate)
    result = verify_certificate(json.dumps(attested), trusted_committee=[pk for pk, _ in members])
    assert result.committee == tuple(pk for pk, _ in members)
    with pytest.raises(InvalidCertificate, match="committee attestation is required"):
        verify_certificate(doc, trusted_committee=[pk for pk, _ in members])
    with pytest.raises(UntrustedSigner):
        verify_certificate(attested, trusted_committee=[members[0][0]])
    other_body = issue_certificate(KIND, {**_body(), "note": "changed"}, ISSUER)
    with pytest.raises(InvalidSignature):  # the attestation does not move to another document
        verify_certificate(attach_committee(other_body, members, aggregate))
    swapped = attach_committee(doc, [members[0], (members[1][0], members[0][1])], aggregate)
    with pytest.raises(RogueKeyError):
        verify_certificate(swapped)
