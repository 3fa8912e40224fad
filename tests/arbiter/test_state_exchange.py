"""State exchange over gRPC on 127.0.0.1: upload, init job, proven final entries, and refusals."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import torch

from arbiter.channels import build_server
from arbiter.codec import entries_to_chunks, state_to_chunks
from arbiter.errors import NotFound
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_client import GrpcProviderPeer
from arbiter.provider_host import ProviderHost
from arbiter.provider_service import ProviderServicer
from arbiter.status import RemoteError
from proofs import SigningKey
from tests.verde.protocol.init_jobs import init_spec, perturbed_state
from verde.protocol.jobs.context import PARAM, RNG, JobContext
from verde.protocol.peers import StateExchangePeer
from verde.protocol.peers.errors import InvalidStateEntries, PeerError, StateRootMismatch
from verde.protocol.peers.fetch import fetch_final_state
from verde.protocol.peers.state import (
    state_root_hex,
    state_to_blobs,
    verify_state_entries,
)
from verde.protocol.provider.provider import Provider

MAX_STATE_BYTES = 64 << 10
CHUNK = 1000  # small, so every tensor crosses several chunks both ways


def _serve(provider: Provider) -> tuple[ProviderHost, grpc.Server, GrpcProviderPeer]:
    host = ProviderHost(provider)
    servicer = ProviderServicer(host, chunk_size=CHUNK, max_state_bytes=MAX_STATE_BYTES)
    server, port = build_server(
        "127.0.0.1:0", lambda s: rpc.add_ProviderServicer_to_server(servicer, s))
    peer = GrpcProviderPeer(f"127.0.0.1:{port}", call_timeout_s=10, chunk_size=CHUNK,
                            transfer_timeout_s=30)
    return host, server, peer


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ProviderHost, GrpcProviderPeer]]:
    host, server, peer = _serve(Provider(SigningKey.from_seed(b"s" * 32), name="s1"))
    yield host, peer
    peer.close()
    server.stop(0)
    host.close()


@pytest.fixture(scope="module")
def state0() -> dict[str, torch.Tensor]:
    return perturbed_state(0.5)


def test_upload_submit_fetch_and_verify_over_grpc(served, state0) -> None:  # type: ignore[no-untyped-def]
    host, peer = served
    assert isinstance(peer, StateExchangePeer)
    spec = init_spec(state0)
    assert peer.put_state(state_to_blobs(state0)) == spec.init["root"]
    job_id = peer.submit(spec.to_dict())
    peer.wait(job_id, timeout_s=120)
    names = [n for n in state0 if n.startswith(PARAM)] + [RNG]
    claim, tensors = fetch_final_state(peer, job_id, spec.steps, names,
                                       structure=JobContext.from_spec(spec).state_structure())
    record = host.provider.jobs[job_id]
    assert record.step_roots[0] == spec.init_root
    final = host.provider.state_at(record, spec.steps)
    assert all(torch.equal(tensors[n], final[n]) for n in names)
    assert torch.equal(tensors[RNG], torch.tensor([spec.seed, spec.steps]))
    local = host.provider.fetch_state(job_id, names)
    remote = peer.fetch_state(job_id, names)
    assert remote.payload == local.payload and remote.blobs == local.blobs
    assert claim.final_state.hex() == remote.payload["root"]


def test_submit_before_upload_fails_at_submit(served) -> None:  # type: ignore[no-untyped-def]
    _, peer = served
    spec = init_spec(perturbed_state(0.75))
    with pytest.raises(RemoteError, match="which was not uploaded to this provider") as info:
        peer.submit(spec.to_dict())
    assert info.value.code is grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(NotFound):  # nothing was queued
        peer.status(spec.job_id)


def test_upload_with_the_wrong_structure_is_refused_at_submit(served, state0) -> None:  # type: ignore[no-untyped-def]
    _, peer = served
    wrong = {n: t for n, t in state0.items() if n != RNG}
    peer.put_state(state_to_blobs(wrong))
    with pytest.raises(RemoteError, match="missing entries") as info:
        peer.submit(init_spec(wrong).to_dict())
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_oversized_upload_is_refused(served) -> None:  # type: ignore[no-untyped-def]
    _, peer = served
    big = {"w": torch.zeros(MAX_STATE_BYTES // 4 + 1)}
    with pytest.raises(RemoteError, match=f"more than the limit {MAX_STATE_BYTES}") as info:
        peer.put_state(state_to_blobs(big))
    assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert peer.put_state(state_to_blobs({"w": torch.zeros(16)}))  # a small one still fits


def _raw_put(peer: GrpcProviderPeer, chunks: list[pb.StateChunk]) -> pb.StateRef:
    return peer.stub.PutState(iter(chunks), timeout=10)


def test_malformed_upload_streams_are_invalid_arguments(served) -> None:  # type: ignore[no-untyped-def]
    _, peer = served
    good = list(state_to_chunks(state_to_blobs({"w": torch.arange(600.0)}), chunk_size=CHUNK))
    assert _raw_put(peer, good).root == state_root_hex({"w": torch.arange(600.0)})
    cases = {
        "truncated": good[:-1],
        "more bytes": [*good, pb.StateChunk(data=b"x")],
        "empty state upload": [],
        "no tensors announced": [pb.StateChunk()],
    }
    lying = pb.StateChunk()
    lying.CopyFrom(good[0])
    lying.tensors[0].nbytes = 2399
    cases["do not fit"] = [lying, *good[1:]]
    twice = pb.StateChunk(tensors=[good[0].tensors[0], good[0].tensors[0]])
    cases["appears twice"] = [twice, *good[1:], *good[1:]]
    for match, chunks in cases.items():
        with pytest.raises(grpc.RpcError) as info:
            _raw_put(peer, chunks)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, match
        assert match in info.value.details()


def test_fetch_errors_over_grpc(served, state0) -> None:  # type: ignore[no-untyped-def]
    _, peer = served
    with pytest.raises(NotFound, match="no job"):
        peer.fetch_state("0" * 64, [RNG])
    spec = init_spec(state0)
    peer.put_state(state_to_blobs(state0))
    job_id = peer.submit(spec.to_dict())
    peer.wait(job_id, timeout_s=120)
    with pytest.raises(RemoteError, match="no entries") as info:
        peer.fetch_state(job_id, ["param/nope"])
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_tampered_or_truncated_entry_streams_are_caught(served, state0) -> None:  # type: ignore[no-untyped-def]
    from arbiter.codec import entries_from_chunks
    from proofs.state import StateCommitment

    host, peer = served
    spec = init_spec(state0)
    peer.put_state(state_to_blobs(state0))
    job_id = peer.submit(spec.to_dict())
    peer.wait(job_id, timeout_s=120)
    names = [n for n in state0 if n.startswith(PARAM)][:1]
    root = StateCommitment.from_tensors(
        host.provider.state_at(host.provider.jobs[job_id], spec.steps)).root
    chunks = list(entries_to_chunks(host.provider.fetch_state(job_id, names), CHUNK))
    verify_state_entries(entries_from_chunks(chunks, 1 << 20), root, names)
    chunks[1] = pb.StateEntriesChunk(data=bytes([chunks[1].data[0] ^ 0x80]) + chunks[1].data[1:])
    with pytest.raises(InvalidStateEntries, match="digest"):
        verify_state_entries(entries_from_chunks(chunks, 1 << 20), root, names)
    with pytest.raises(PeerError, match="truncated"):
        entries_from_chunks(chunks[:-1], 1 << 20)
    with pytest.raises(PeerError, match="limit"):
        entries_from_chunks(chunks, 10)
    with pytest.raises(PeerError, match="not valid JSON"):
        entries_from_chunks([pb.StateEntriesChunk(payload_json="{")], 10)


class _Misfiling(Provider):
    """Acknowledges every upload under the wrong root."""

    def receive_state(self, entries, data):  # type: ignore[no-untyped-def]
        super().receive_state(entries, data)
        return "ab" * 32


def test_a_misfiled_upload_is_detected_by_the_client(state0) -> None:  # type: ignore[no-untyped-def]
    host, server, peer = _serve(_Misfiling(SigningKey.from_seed(b"m" * 32)))
    try:
        with pytest.raises(StateRootMismatch, match=state_root_hex(state0)):
            peer.put_state(state_to_blobs(state0))
    finally:
        peer.close()
        server.stop(0)
        host.close()
