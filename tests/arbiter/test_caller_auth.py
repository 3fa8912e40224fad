"""Signed requests and the allow list, against a real provider and arbiter on 127.0.0.1.

The provider's budget refuses every job (steps <= 1), so a request that gets past
authentication ends RESOURCE_EXHAUSTED without running anything: every check below is told
apart by its status code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from arbiter.access import AccessPolicy
from arbiter.arbiter_app import start_arbiter
from arbiter.arbiter_client import ArbiterClient
from arbiter.errors import ArbiterInputError, Unauthenticated
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_app import start_provider
from arbiter.provider_client import GrpcProviderPeer
from arbiter.request_signing import (
    NONCE_HEADER,
    TIME_HEADER,
    ReplayCache,
    body_digest,
    load_allow_list,
    sign_request,
)
from arbiter.status import RemoteError
from proofs import SigningKey
from tests.arbiter.conftest import SPEC, key_file
from verde.protocol.graph.budget import Budget
from verde.protocol.peers.messages import TensorBlob

ALICE = SigningKey.from_seed(b"alice".ljust(32, b"\0"))
MALLORY = SigningKey.from_seed(b"mallory".ljust(32, b"\0"))
SUBMIT = "/verde.v1.Provider/SubmitJob"


def allow_file(tmp: Path, *keys: SigningKey) -> Path:
    path = tmp / "clients.txt"
    path.write_text("# clients allowed to submit\n"
                    + "".join(f"{k.public_key.hex()}  # a client\n" for k in keys) + "\n")
    return path


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("auth")
    policy = AccessPolicy(allow_clients=allow_file(tmp, ALICE), budget=Budget(steps=1))
    running = start_provider(key_file(tmp, "prov"), "127.0.0.1:0", access=policy)
    address = f"127.0.0.1:{running.port}"
    channel = grpc.insecure_channel(address)
    try:
        yield {"address": address, "stub": rpc.ProviderStub(channel), "tmp": tmp}
    finally:
        channel.close()
        running.close(0)


def submit(stub: rpc.ProviderStub, metadata: list[tuple[str, str]] | None,
           request: pb.JobRequest | None = None) -> grpc.StatusCode:
    request = request or pb.JobRequest(spec_json=json.dumps(SPEC))
    try:
        stub.SubmitJob(request, metadata=metadata, timeout=60)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def signed(key: SigningKey, request: pb.JobRequest | None = None, **kw: Any
           ) -> list[tuple[str, str]]:
    request = request or pb.JobRequest(spec_json=json.dumps(SPEC))
    return sign_request(key, SUBMIT, body_digest(request.SerializeToString()), **kw)


def test_an_allowed_signed_request_passes_and_reaches_the_budget(guarded) -> None:  # type: ignore[no-untyped-def]
    assert submit(guarded["stub"], signed(ALICE)) is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_unsigned_requests_are_refused_but_reads_stay_open(guarded) -> None:  # type: ignore[no-untyped-def]
    try:
        guarded["stub"].SubmitJob(pb.JobRequest(spec_json=json.dumps(SPEC)), timeout=60)
    except grpc.RpcError as err:
        assert err.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "needs a signed request" in err.details()
    else:
        pytest.fail("an unsigned submission was accepted")
    assert guarded["stub"].Identity(pb.Empty(), timeout=60).public_key


def test_an_unknown_key_is_permission_denied(guarded) -> None:  # type: ignore[no-untyped-def]
    try:
        guarded["stub"].SubmitJob(pb.JobRequest(spec_json=json.dumps(SPEC)),
                                  metadata=signed(MALLORY), timeout=60)
    except grpc.RpcError as err:
        assert err.code() is grpc.StatusCode.PERMISSION_DENIED
        assert MALLORY.public_key.hex()[:16] in err.details()
        assert "allow list" in err.details()
    else:
        pytest.fail("a key off the allow list was accepted")


def test_a_wrong_key_or_an_altered_body_does_not_verify(guarded) -> None:  # type: ignore[no-untyped-def]
    forged = [(k, v) for k, v in signed(MALLORY)]
    forged[0] = (forged[0][0], ALICE.public_key.hex())  # claims to be alice, signed by mallory
    assert submit(guarded["stub"], forged) is grpc.StatusCode.UNAUTHENTICATED
    other = pb.JobRequest(spec_json=json.dumps({**SPEC, "seed": 99}))
    # alice's signature over one spec, sent with another
    assert submit(guarded["stub"], signed(ALICE), other) is grpc.StatusCode.UNAUTHENTICATED
    # ...or for another method
    moved = sign_request(ALICE, "/verde.v1.Provider/GetStatus",
                         body_digest(pb.JobRequest(spec_json=json.dumps(SPEC))
                                     .SerializeToString()))
    assert submit(guarded["stub"], moved) is grpc.StatusCode.UNAUTHENTICATED


def test_a_replayed_request_is_refused(guarded) -> None:  # type: ignore[no-untyped-def]
    metadata = signed(ALICE)
    assert submit(guarded["stub"], metadata) is grpc.StatusCode.RESOURCE_EXHAUSTED
    try:
        guarded["stub"].SubmitJob(pb.JobRequest(spec_json=json.dumps(SPEC)),
                                  metadata=metadata, timeout=60)
    except grpc.RpcError as err:
        assert err.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "replayed" in err.details()
    else:
        pytest.fail("a replayed request was accepted")


def test_stale_future_and_malformed_signatures_are_refused(guarded) -> None:  # type: ignore[no-untyped-def]
    import time

    stub = guarded["stub"]
    assert submit(stub, signed(ALICE, now=time.time() - 600)) is grpc.StatusCode.UNAUTHENTICATED
    assert submit(stub, signed(ALICE, now=time.time() + 600)) is grpc.StatusCode.UNAUTHENTICATED
    partial = [(k, v) for k, v in signed(ALICE) if k != NONCE_HEADER]
    assert submit(stub, partial) is grpc.StatusCode.UNAUTHENTICATED
    bad_time = [(k, "soon" if k == TIME_HEADER else v) for k, v in signed(ALICE)]
    assert submit(stub, bad_time) is grpc.StatusCode.UNAUTHENTICATED


def test_the_client_classes_sign_uploads_and_submissions(guarded) -> None:  # type: ignore[no-untyped-def]
    blob = TensorBlob("float32", (4,), np.arange(4, dtype="<f4").tobytes())
    with GrpcProviderPeer(guarded["address"], client_key=ALICE) as peer:
        assert len(peer.put_state({"w": blob})) == 64
        with pytest.raises(RemoteError, match="steps = 6"):  # past the gate, into the budget
            peer.submit(SPEC)
    for key in (None, MALLORY):
        with GrpcProviderPeer(guarded["address"], client_key=key) as peer, \
                pytest.raises(RemoteError) as info:
            peer.put_state({"w": blob})
        assert info.value.code in (grpc.StatusCode.UNAUTHENTICATED,
                                   grpc.StatusCode.PERMISSION_DENIED)


def test_an_arbiter_with_an_allow_list_opens_disputes_only_for_its_clients(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    policy = AccessPolicy(allow_clients=allow_file(tmp_path, ALICE))
    running = start_arbiter(key_file(tmp_path, "arb"), "127.0.0.1:0",
                            f"sqlite:///{tmp_path / 'a.db'}", workers=1, access=policy)
    try:
        address = f"127.0.0.1:{running.port}"
        entries = [("127.0.0.1:1", "{}"), ("127.0.0.1:2", "{}")]
        for key, code in ((None, grpc.StatusCode.UNAUTHENTICATED),
                          (MALLORY, grpc.StatusCode.PERMISSION_DENIED),
                          (ALICE, grpc.StatusCode.INVALID_ARGUMENT)):  # past the gate
            with ArbiterClient(address, client_key=key) as client, \
                    pytest.raises(RemoteError) as info:
                client.open_dispute(SPEC, entries)
            assert info.value.code is code, info.value
    finally:
        running.shutdown()


def test_an_open_service_warns_once_at_start(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    running = start_provider(key_file(tmp_path, "open"), "127.0.0.1:0",
                             access=AccessPolicy(budget=Budget(steps=1)))
    try:
        assert running.access is not None
        with caplog.at_level(logging.WARNING, logger="verde.service"):
            running.access.log_started()  # what `verde provider serve` does after its line
        warnings = [r for r in caplog.records if "no --allow-clients" in r.getMessage()]
        assert len(warnings) == 1
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        stub = rpc.ProviderStub(channel)
        assert submit(stub, None) is grpc.StatusCode.RESOURCE_EXHAUSTED  # open: no signature
        # ...but a signature that is there must still be right
        forged = signed(MALLORY, nonce="0" * 32)
        forged[0] = (forged[0][0], ALICE.public_key.hex())
        assert submit(stub, forged) is grpc.StatusCode.UNAUTHENTICATED
        channel.close()
    finally:
        running.close(0)


def test_allow_list_files_are_checked(tmp_path: Path) -> None:
    good = allow_file(tmp_path, ALICE, MALLORY)
    assert load_allow_list(good) == {ALICE.public_key.hex(), MALLORY.public_key.hex()}
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{ALICE.public_key.hex()}\nnot-a-key\n")
    with pytest.raises(ArbiterInputError, match="line 2"):
        load_allow_list(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody\n")
    with pytest.raises(ArbiterInputError, match="no keys"):
        load_allow_list(empty)
    with pytest.raises(ArbiterInputError, match="cannot read"):
        load_allow_list(tmp_path / "missing.txt")


def test_the_replay_cache_is_bounded_and_forgets_only_expired_nonces() -> None:
    cache = ReplayCache(max_entries=2)
    cache.remember("k", "a" * 32, expires=10.0, now=0.0)
    cache.remember("k", "b" * 32, expires=20.0, now=0.0)
    with pytest.raises(Unauthenticated, match="replayed"):
        cache.remember("k", "a" * 32, expires=10.0, now=5.0)
    with pytest.raises(Unauthenticated, match="too many"):  # full of live nonces: refuse
        cache.remember("k", "c" * 32, expires=15.0, now=5.0)
    cache.remember("k", "c" * 32, expires=30.0, now=11.0)  # "a" expired and was dropped
    assert len(cache) == 2
