"""The arbiter reaches a party only where the party vouched, proved by a challenge.

Real gRPC servers on 127.0.0.1: a real provider, and impostors that serve only Endpoint and
Challenge (another key at the party's address, a replayed challenge answer, someone else's
record). Each case ends with the party proved, or with ``Unreachable`` -- never with a
contact at an address the party did not sign for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from arbiter.channels import build_server
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_app import RunningProvider, start_provider
from arbiter.provider_client import GrpcProviderPeer
from arbiter.vouched import MAX_HINTS, PartyReach, Unreachable, hints_of, merge_opening
from proofs import SigningKey
from tests.arbiter.conftest import key_file
from tests.e2e.hostile import EndpointImpostor
from verde.protocol.peers.endpoints import (
    EndpointRecord,
    answer_challenge,
    sign_endpoint,
)

HONEST = SigningKey.from_seed(b"reach-honest".ljust(32, b"\0"))
OTHER = SigningKey.from_seed(b"reach-other".ljust(32, b"\0"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("reach")
    path = key_file(tmp, "reach-honest")
    assert SigningKey.load(path).public_key.hex() == HONEST.public_key.hex()
    running: RunningProvider = start_provider(path, "127.0.0.1:0")
    impostor = EndpointImpostor(key=OTHER)
    server, port = build_server("127.0.0.1:0",
                                lambda s: rpc.add_ProviderServicer_to_server(impostor, s))
    peers: dict[str, GrpcProviderPeer] = {}

    def peer(address: str) -> GrpcProviderPeer:
        if address not in peers:
            peers[address] = GrpcProviderPeer(address)
        return peers[address]

    try:
        yield {"honest": f"127.0.0.1:{running.port}", "impostor": impostor,
               "impostor_at": f"127.0.0.1:{port}", "peer": peer}
    finally:
        for p in peers.values():
            p.close()
        server.stop(0)
        running.close(0)


def _reach(world: dict[str, Any], opening: dict[str, Any], patience_s: float = 0.3
           ) -> tuple[PartyReach, list[dict[str, EndpointRecord]]]:
    saved: list[dict[str, EndpointRecord]] = []
    reach = PartyReach({"a": HONEST.public_key.hex()}, world["peer"], lambda: opening,
                       lambda r: saved.append(dict(r)), patience_s=patience_s)
    return reach, saved


def test_a_hinted_address_is_used_once_its_record_is_the_partys(world) -> None:  # type: ignore[no-untyped-def]
    reach, saved = _reach(world, {"hints": {"a": ["127.0.0.1:1", world["honest"]]}})
    _, record = reach.contact("a")
    assert record.address == world["honest"]
    assert saved and saved[0]["a"].address == world["honest"]  # kept for the next drive
    assert reach.confirm_silence("a").address == world["honest"]


def test_nothing_listening_at_the_hint_is_unreachable_not_silence(world) -> None:  # type: ignore[no-untyped-def]
    reach, _ = _reach(world, {"hints": {"a": ["127.0.0.1:1"]}})
    with pytest.raises(Unreachable, match="could not be reached"):
        reach.contact("a")
    with pytest.raises(Unreachable, match="never reached"):
        reach.confirm_silence("a")


def test_an_unknown_key_vouching_for_the_hint_does_not_count(world) -> None:  # type: ignore[no-untyped-def]
    imp: EndpointImpostor = world["impostor"]
    imp.record, imp.key, imp.replayed = sign_endpoint(OTHER, world["impostor_at"]), OTHER, None
    reach, saved = _reach(world, {"hints": {"a": [world["impostor_at"]]}})
    with pytest.raises(Unreachable, match="not by the party"):
        reach.contact("a")
    assert not saved


def test_another_key_answering_at_the_vouched_address_is_unreachable(world) -> None:  # type: ignore[no-untyped-def]
    """Address hijack: the party signed for the address, someone else answers there."""
    imp: EndpointImpostor = world["impostor"]
    imp.record, imp.key, imp.replayed = sign_endpoint(HONEST, world["impostor_at"]), OTHER, None
    reach, _ = _reach(world, {"endpoints": {"a": imp.record.to_json()}})
    with pytest.raises(Unreachable, match="holds key"):
        reach.contact("a")


def test_a_replayed_challenge_answer_is_unreachable(world) -> None:  # type: ignore[no-untyped-def]
    imp: EndpointImpostor = world["impostor"]
    imp.record = sign_endpoint(HONEST, world["impostor_at"])
    imp.replayed = answer_challenge(HONEST, "ab" * 16, world["impostor_at"])  # captured once
    reach, _ = _reach(world, {"endpoints": {"a": imp.record.to_json()}})
    with pytest.raises(Unreachable, match="another challenge"):
        reach.contact("a")


def test_an_expired_record_is_not_used(world) -> None:  # type: ignore[no-untyped-def]
    imp: EndpointImpostor = world["impostor"]
    old = sign_endpoint(HONEST, world["impostor_at"], ttl_s=60, now=time.time() - 3600)
    imp.record, imp.key, imp.replayed = old, HONEST, None  # would pass the challenge
    reach, _ = _reach(world, {"endpoints": {"a": old.to_json()}})
    with pytest.raises(Unreachable, match="no valid endpoint record"):
        reach.contact("a")


def test_the_newest_valid_record_wins_and_hints_stay_bounded() -> None:
    keys = {"a": HONEST.public_key.hex(), "b": OTHER.public_key.hex()}
    old = sign_endpoint(HONEST, "127.0.0.1:5000", now=time.time() - 10)
    new = sign_endpoint(HONEST, "127.0.0.1:5001")
    foreign = sign_endpoint(OTHER, "127.0.0.1:6000")
    opening = merge_opening({"addresses": {"a": "127.0.0.1:1", "b": ""}}, keys,
                            {"a": new}, {"a": "127.0.0.1:1"})
    again = merge_opening(opening, keys, {"a": old, "b": None}, {})
    assert EndpointRecord.from_json(again["endpoints"]["a"]).address == "127.0.0.1:5001"
    # a record of another key offered for party a is never stored as a's
    mixed = merge_opening(again, {"a": keys["a"]}, {"a": foreign}, {})
    assert json.dumps(mixed["endpoints"]["a"]) == json.dumps(new.to_json())
    for i in range(10):
        opening = merge_opening(opening, keys, {}, {"a": f"127.0.0.1:{100 + i}"})
    assert hints_of(opening, "a")[0] == "127.0.0.1:109"
    assert len(hints_of(opening, "a")) == MAX_HINTS
    assert hints_of({"addresses": {"a": "h:1"}}, "a") == ["h:1"]  # openings of old releases


def test_silence_after_proof_counts_unless_someone_else_answers_there(world) -> None:  # type: ignore[no-untyped-def]
    impostor = EndpointImpostor(key=OTHER)
    server, port = build_server("127.0.0.1:0",
                                lambda s: rpc.add_ProviderServicer_to_server(impostor, s))
    address = f"127.0.0.1:{port}"
    try:
        impostor.record, impostor.key = sign_endpoint(HONEST, address), HONEST
        reach, _ = _reach(world, {"endpoints": {"a": impostor.record.to_json()}})
        reach.contact("a")
        assert reach.confirm_silence("a").address == address  # still proves its key
        impostor.key = OTHER  # the address changed hands after the party proved itself
        with pytest.raises(Unreachable, match="someone else"):
            reach.confirm_silence("a")
        impostor.key = HONEST
        reach.contact("a")
    finally:
        server.stop(0).wait()
    # The party proved itself, then went down: its silence counts.
    assert reach.confirm_silence("a").address == address
