"""A provider vouches for its own address over gRPC: Endpoint and Challenge on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from arbiter.errors import ArbiterInputError
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_app import RunningProvider, start_provider
from arbiter.provider_client import GrpcProviderPeer
from arbiter.provider_endpoint import NoEndpoint, ProviderEndpoint
from proofs import SigningKey
from tests.arbiter.conftest import key_file
from verde.protocol.peers.endpoints import InvalidEndpoint, check_challenge, new_challenge


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningProvider, Path]]:
    tmp = tmp_path_factory.mktemp("endpoint")
    running = start_provider(key_file(tmp, "vouching"), "127.0.0.1:0")
    try:
        yield running, key_file(tmp, "vouching")
    finally:
        running.close(0)


def test_the_record_names_the_bound_address_and_is_the_providers(provider) -> None:  # type: ignore[no-untyped-def]
    running, key_path = provider
    address = f"127.0.0.1:{running.port}"
    assert running.advertised == address
    with GrpcProviderPeer(address) as peer:
        record = peer.endpoint()
        assert record.address == address
        assert record.check(SigningKey.load(key_path).public_key) is record
        nonce = new_challenge()
        check_challenge(peer.challenge(nonce, address), nonce, address, record.signer)


def test_a_challenge_answer_does_not_pass_for_another_nonce_or_key(provider) -> None:  # type: ignore[no-untyped-def]
    running, _ = provider
    address = f"127.0.0.1:{running.port}"
    with GrpcProviderPeer(address) as peer:
        answer = peer.challenge("ab" * 16, address)
        with pytest.raises(InvalidEndpoint, match="another challenge"):
            check_challenge(answer, "cd" * 16, address, answer.signer)
        stranger = SigningKey.from_seed(b"stranger".ljust(32, b"\0")).public_key
        with pytest.raises(InvalidEndpoint, match="holds key"):
            check_challenge(answer, "ab" * 16, address, stranger)


@pytest.mark.parametrize(("nonce", "address_of"), [
    ("ab" * 16, lambda a: "127.0.0.1:1"),   # an address it does not answer at (a relay's)
    ("xyz", lambda a: a),                   # not hex
    ("ab", lambda a: a),                    # too short
    ("AB" * 16, lambda a: a),               # upper case
    ("ab" * 100, lambda a: a),              # too long
])
def test_bad_challenges_are_invalid_argument(provider, nonce, address_of) -> None:  # type: ignore[no-untyped-def]
    running, _ = provider
    address = f"127.0.0.1:{running.port}"
    with grpc.insecure_channel(address) as ch, pytest.raises(grpc.RpcError) as info:
        rpc.ProviderStub(ch).Challenge(pb.ChallengeRequest(nonce=nonce,
                                                           address=address_of(address)),
                                       timeout=10)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, info.value.details()


def test_records_are_renewed_at_half_their_lifetime() -> None:
    key = SigningKey.from_seed(b"renew".ljust(32, b"\0"))
    endpoint = ProviderEndpoint(key, "127.0.0.1:7001", ttl_s=100)
    first = endpoint.record(now=1000.0)
    assert endpoint.record(now=1049.0) is first
    renewed = endpoint.record(now=1050.0)
    assert renewed.issued_at == 1050 and renewed.expires_at == 1150
    assert json.dumps(renewed.to_json()) != json.dumps(first.to_json())


def test_no_address_means_no_record_and_no_challenge() -> None:
    endpoint = ProviderEndpoint(SigningKey.from_seed(b"mute".ljust(32, b"\0")))
    with pytest.raises(NoEndpoint):
        endpoint.record()
    with pytest.raises(NoEndpoint):
        endpoint.answer("ab" * 16, "127.0.0.1:1")
    with pytest.raises(ArbiterInputError, match="advertise"):
        endpoint.advertise("nowhere")
    with pytest.raises(ArbiterInputError, match="lifetime"):
        ProviderEndpoint(SigningKey.generate(), ttl_s=0)


def test_a_wildcard_listen_address_is_vouched_for_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="verde.service"):
        running = start_provider(key_file(tmp_path, "wild"), "0.0.0.0:0")
    try:
        assert running.advertised == f"0.0.0.0:{running.port}"
        assert any("--advertise" in r.getMessage() for r in caplog.records)
    finally:
        running.close(0)
    explicit = start_provider(key_file(tmp_path, "named"), "127.0.0.1:0",
                              advertise="verde.example.org:7001")
    try:
        assert explicit.advertised == "verde.example.org:7001"
    finally:
        explicit.close(0)
