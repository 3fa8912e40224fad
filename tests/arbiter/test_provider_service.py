"""Provider service on 127.0.0.1: a real provider behind gRPC answers like the in-process one."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from arbiter.channels import build_server, check_health
from arbiter.codec import answer_from_chunks, answer_to_chunks
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_client import GrpcProviderPeer
from arbiter.provider_host import ProviderHost
from arbiter.provider_service import ProviderServicer
from proofs import SigningKey, verify_message
from verde.protocol.peers.errors import PeerError, PeerTimeout
from verde.protocol.peers.messages import Query
from verde.protocol.peers.payloads import StepChildrenQuery
from verde.protocol.provider.provider import Provider

SPEC = {"program": "mlp", "dataset": {"name": "digits"}, "optimizer": {"name": "sgd", "lr": 0.1},
        "steps": 4, "batch_size": 8, "seed": 1, "checkpoint_interval": 2}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ProviderHost, GrpcProviderPeer]]:
    host = ProviderHost(Provider(SigningKey.from_seed(b"p" * 32), name="p1"))
    server, port = build_server(
        "127.0.0.1:0", lambda s: rpc.add_ProviderServicer_to_server(ProviderServicer(host), s))
    peer = GrpcProviderPeer(f"127.0.0.1:{port}", call_timeout_s=10)
    yield host, peer
    peer.close()
    server.stop(0)
    host.close()


def test_health_identity_submit_and_signed_result(served) -> None:  # type: ignore[no-untyped-def]
    host, peer = served
    assert check_health(peer.channel)
    assert peer.identity == host.identity
    job_id = peer.submit(SPEC)
    seen: list[tuple[int, int]] = []
    peer.wait(job_id, timeout_s=120, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (4, 4)
    result = peer.result(job_id)
    verify_message(result)
    assert result.signer == host.identity
    assert result.to_json() == host.provider.result(job_id).to_json()


def test_query_answer_round_trips_signed_and_identical(served) -> None:  # type: ignore[no-untyped-def]
    host, peer = served
    job_id = peer.submit(SPEC)
    peer.wait(job_id, timeout_s=120)
    query = Query(job_id, "d" * 16, 1, StepChildrenQuery.KIND, {"position": [0, 5]}, deadline_s=10)
    remote = peer.answer(query)
    local = host.provider.answer(query)
    assert remote.signed.to_json() == local.signed.to_json()
    verify_message(remote.signed, expected_context=query.context)


def test_bad_input_gets_clear_status_codes(served) -> None:  # type: ignore[no-untyped-def]
    _, peer = served
    with pytest.raises(Exception, match="unknown program") as info:
        peer.submit({**SPEC, "program": "nope"})
    assert getattr(info.value, "code", None) is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(Exception, match="no job") as info:
        peer.result("0" * 64)
    q = Query("0" * 64, "d", 1, StepChildrenQuery.KIND, {"position": [0, 2]}, deadline_s=5)
    with pytest.raises(Exception, match="no job"):
        peer.answer(q)


def test_truncated_or_oversized_answer_streams_are_rejected(served) -> None:  # type: ignore[no-untyped-def]
    host, peer = served
    job_id = peer.submit(SPEC)
    peer.wait(job_id, timeout_s=120)
    import torch

    from verde.protocol.peers.messages import Answer, TensorBlob
    from verde.protocol.peers.payloads import StepLeavesQuery

    query = Query(job_id, "d", 1, StepLeavesQuery.KIND, {"indices": [1]})
    signed = host.provider.answer(query).signed
    answer = Answer(signed, {"t": TensorBlob.from_tensor(torch.arange(10.0))})
    chunks = list(answer_to_chunks(answer, chunk_size=7))
    assert len(chunks) == 1 + 6  # header + 40 bytes in chunks of 7
    assert answer_from_chunks(chunks, max_bytes=40).blobs["t"].to_tensor().equal(
        torch.arange(10.0))
    with pytest.raises(PeerError, match="truncated"):
        answer_from_chunks(chunks[:-1], max_bytes=1 << 20)
    with pytest.raises(PeerError, match="limit"):
        answer_from_chunks(chunks, max_bytes=39)
    chunks[0].tensors[0].nbytes = 41
    with pytest.raises(PeerError, match="do not fit"):
        answer_from_chunks(chunks, max_bytes=1 << 20)
    with pytest.raises(PeerError, match="empty"):
        answer_from_chunks([], max_bytes=10)


def test_a_silent_provider_times_out(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    host, peer = served
    job_id = peer.submit(SPEC)
    peer.wait(job_id, timeout_s=120)
    from verde.protocol.peers.errors import RefusedQuery

    def refuse(query: Query) -> None:
        raise RefusedQuery("fault plan: silent")

    monkeypatch.setattr(host.provider, "answer", refuse)
    q = Query(job_id, "d", 1, StepChildrenQuery.KIND, {"position": [0, 5]}, deadline_s=0.5)
    with pytest.raises(PeerTimeout):
        peer.answer(q)


def test_a_job_that_could_not_be_disputed_is_refused_at_submit(served) -> None:  # type: ignore[no-untyped-def]
    """The provider service runs admission before queueing: no compute for a job whose graph
    the arbiter could not derive (value-dependent control flow)."""
    from collections.abc import Mapping

    import torch

    from verde.protocol.jobs.programs import Program
    from verde.protocol.jobs.registry import register_program

    class ValueDependent(Program):
        name = "test-service-value-dependent"
        kinds = ("train",)

        def build(self, config: Mapping[str, object], fields: Mapping[str, object]
                  ) -> torch.nn.Module:
            return torch.nn.Linear(64, 10)

        def outputs(self, module: torch.nn.Module, batch: Mapping[str, torch.Tensor]
                    ) -> torch.Tensor:
            return module(batch["x"])

        def loss(self, module: torch.nn.Module, batch: Mapping[str, torch.Tensor]
                 ) -> torch.Tensor:
            loss = torch.nn.functional.cross_entropy(self.outputs(module, batch), batch["y"])
            return loss * 2 if loss.item() > 1 else loss

    register_program(ValueDependent(), replace=True)
    host, peer = served
    with pytest.raises(Exception, match="cannot be disputed") as info:
        peer.submit({**SPEC, "program": ValueDependent.name})
    assert getattr(info.value, "code", None) is grpc.StatusCode.INVALID_ARGUMENT
    assert all(p.state != "queued" for p in host._progress.values())
