"""Signed endpoint records and connection challenges: only the party vouches for its address."""

from __future__ import annotations

import time

import pytest

from proofs import SigningKey
from verde.protocol.peers.endpoints import (
    EndpointRecord,
    InvalidEndpoint,
    answer_challenge,
    check_address,
    check_challenge,
    new_challenge,
    newest_valid,
    sign_endpoint,
)

ALICE = SigningKey.from_seed(b"a" * 32)
MALLORY = SigningKey.from_seed(b"m" * 32)


def test_a_record_round_trips_and_checks() -> None:
    record = sign_endpoint(ALICE, "127.0.0.1:7001", ttl_s=60)
    again = EndpointRecord.from_json(record.to_json())
    assert again.check(ALICE.public_key).address == "127.0.0.1:7001"
    assert again.expires_at - again.issued_at == 60


def test_records_of_another_key_expired_or_from_the_future_are_refused() -> None:
    record = sign_endpoint(ALICE, "127.0.0.1:7001", ttl_s=60)
    with pytest.raises(InvalidEndpoint, match="not by the party"):
        record.check(MALLORY.public_key)
    with pytest.raises(InvalidEndpoint, match="expired"):
        record.check(ALICE.public_key, now=time.time() + 61)
    future = sign_endpoint(ALICE, "127.0.0.1:7001", now=time.time() + 3600)
    with pytest.raises(InvalidEndpoint, match="future"):
        future.check(ALICE.public_key)


def test_an_edited_record_does_not_verify() -> None:
    doc = sign_endpoint(ALICE, "127.0.0.1:7001").to_json()
    doc["payload"]["address"] = "127.0.0.1:9999"  # the framing of issue 15: another address
    with pytest.raises(InvalidEndpoint):
        EndpointRecord.from_json(doc)
    with pytest.raises(InvalidEndpoint):
        EndpointRecord.from_json({"not": "a record"})


def test_the_newest_valid_record_wins() -> None:
    old = sign_endpoint(ALICE, "127.0.0.1:7001", now=time.time() - 100)
    new = sign_endpoint(ALICE, "127.0.0.1:7002")
    forged = sign_endpoint(MALLORY, "127.0.0.1:6666")
    assert newest_valid([old, forged, new], ALICE.public_key) == new
    assert newest_valid([forged], ALICE.public_key) is None


@pytest.mark.parametrize("address", ["localhost:1", "[::1]:80", "provider-1.example.org:7001",
                                     "10.0.0.2:65535"])
def test_addresses_that_are_accepted(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["x", "x:0", "x:65536", "bad host:1", "[zz]:1", ":80",
                                     "a..b:1", "-a:1", 7001])
def test_addresses_that_are_refused(address: object) -> None:
    with pytest.raises(InvalidEndpoint):
        check_address(address)  # type: ignore[arg-type]


def test_a_challenge_proves_the_key_at_the_address_now() -> None:
    nonce = new_challenge()
    answer = answer_challenge(ALICE, nonce, "127.0.0.1:7001")
    check_challenge(answer.to_json(), nonce, "127.0.0.1:7001", ALICE.public_key)
    with pytest.raises(InvalidEndpoint, match="holds key"):  # another party at that address
        check_challenge(answer_challenge(MALLORY, nonce, "127.0.0.1:7001"), nonce,
                        "127.0.0.1:7001", ALICE.public_key)
    with pytest.raises(InvalidEndpoint, match="another challenge"):  # a replayed answer
        check_challenge(answer, new_challenge(), "127.0.0.1:7001", ALICE.public_key)
    with pytest.raises(InvalidEndpoint, match="another challenge"):
        check_challenge(answer, nonce, "127.0.0.1:7002", ALICE.public_key)
