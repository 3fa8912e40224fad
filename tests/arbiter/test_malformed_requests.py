"""Bytes that are not a protobuf message get INVALID_ARGUMENT, not gRPC's own INTERNAL."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from arbiter.proto import verde_pb2 as pb
from arbiter.provider_app import RunningProvider, start_provider
from tests.arbiter.conftest import key_file

# A field 1 of wire type "length-delimited" announcing far more bytes than follow, and a
# string field holding invalid UTF-8: neither decodes.
GARBAGE = [b"\x0a\xff\xff\xff\x0f", b"\x0a\x02\xff\xfe", b"\xff"]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    running = start_provider(key_file(tmp_path_factory.mktemp("garbage"), "garbage"),
                             "127.0.0.1:0")
    try:
        yield running
    finally:
        running.close(0)


def _raw(channel: grpc.Channel, method: str, streaming_request: bool = False) -> object:
    make = channel.stream_unary if streaming_request else channel.unary_unary
    return make(f"/verde.v1.Provider/{method}", request_serializer=None,
                response_deserializer=None)


@pytest.mark.parametrize("data", GARBAGE)
@pytest.mark.parametrize("method", ["SubmitJob", "GetResult", "Challenge"])
def test_undecodable_unary_requests_are_invalid_argument(provider, method, data) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(f"127.0.0.1:{provider.port}") as ch:
        call = _raw(ch, method)
        with pytest.raises(grpc.RpcError) as info:
            call(data, timeout=10)  # type: ignore[operator]
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert method in (info.value.details() or "")


def test_an_undecodable_message_in_a_request_stream_is_invalid_argument(provider) -> None:  # type: ignore[no-untyped-def]
    good = pb.StateChunk().SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{provider.port}") as ch:
        call = _raw(ch, "PutState", streaming_request=True)
        with pytest.raises(grpc.RpcError) as info:
            call(iter([good, GARBAGE[0]]), timeout=10)  # type: ignore[operator]
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, info.value.details()


def test_a_valid_request_still_works(provider) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(f"127.0.0.1:{provider.port}") as ch:
        reply = _raw(ch, "Identity")(pb.Empty().SerializeToString(), timeout=10)  # type: ignore[operator]
    assert pb.IdentityReply.FromString(reply).public_key
