"""Slow-drip, silent, endless, oversized and too many uploads against a real provider on
127.0.0.1: each ends early with a status naming the limit, and the provider keeps answering."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from arbiter.access import AccessPolicy
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_app import start_provider
from tests.arbiter.conftest import key_file

IDLE_S = 0.6
MAX_S = 2.5
DATA = np.arange(256, dtype="<f4").tobytes()


def header(nbytes: int = len(DATA)) -> pb.StateChunk:
    return pb.StateChunk(tensors=[pb.TensorHeader(name="w", dtype="float32",
                                                  shape=[nbytes // 4], nbytes=nbytes)])


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("uploads")
    policy = AccessPolicy(upload_idle_s=IDLE_S, upload_max_s=MAX_S, max_uploads=2)
    running = start_provider(key_file(tmp, "up"), "127.0.0.1:0", access=policy,
                             max_state_bytes=1 << 20)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield {"stub": rpc.ProviderStub(channel)}
    finally:
        channel.close()
        running.close(0)


def upload(stub: rpc.ProviderStub, chunks: Iterator[pb.StateChunk]
           ) -> tuple[grpc.StatusCode, str, float]:
    start = time.monotonic()
    try:
        reply = stub.PutState(chunks, timeout=30)
    except grpc.RpcError as err:
        return err.code(), err.details() or "", time.monotonic() - start
    return grpc.StatusCode.OK, reply.root, time.monotonic() - start


def drip(pause_s: float, pieces: int = 8) -> Iterator[pb.StateChunk]:
    yield header()
    step = len(DATA) // pieces
    for i in range(pieces):
        time.sleep(pause_s)
        yield pb.StateChunk(data=DATA[i * step:(i + 1) * step])


def test_a_prompt_upload_is_stored(provider: dict[str, Any]) -> None:
    code, root, _ = upload(provider["stub"], drip(0.0))
    assert code is grpc.StatusCode.OK and len(root) == 64


def test_a_slow_drip_ends_at_the_idle_limit(provider: dict[str, Any]) -> None:
    code, detail, took = upload(provider["stub"], drip(IDLE_S * 3))
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED, (code, detail)
    assert "idle for more than" in detail and "--upload-idle-seconds" in detail
    assert took < 10


def test_a_stream_opened_and_left_silent_ends_too(provider: dict[str, Any]) -> None:
    release = threading.Event()

    def silent() -> Iterator[pb.StateChunk]:
        release.wait(20)
        yield header()

    code, detail, took = upload(provider["stub"], silent())
    release.set()
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED and "idle" in detail, (code, detail)
    assert took < 10


def test_an_upload_that_never_ends_hits_the_total_limit(provider: dict[str, Any]) -> None:
    def endless() -> Iterator[pb.StateChunk]:
        yield pb.StateChunk(tensors=[pb.TensorHeader(name="w", dtype="float32",
                                                     shape=[1 << 18], nbytes=1 << 20)])
        for _ in range(100):  # a byte every IDLE_S / 3: never idle, never done
            time.sleep(IDLE_S / 3)
            yield pb.StateChunk(data=b"\0\0\0\0")

    code, detail, took = upload(provider["stub"], endless())
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED, (code, detail)
    assert "--upload-max-seconds" in detail and MAX_S - 0.5 < took < MAX_S + 5


def test_an_oversized_upload_is_refused_before_its_data(provider: dict[str, Any]) -> None:
    sent = []

    def huge() -> Iterator[pb.StateChunk]:
        yield header(1 << 40)
        for _ in range(1000):
            sent.append(1)
            time.sleep(0.01)
            yield pb.StateChunk(data=b"\0" * 1024)

    code, detail, took = upload(provider["stub"], huge())
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "1048576" in detail, (code, detail)
    assert took < 5 and len(sent) < 1000


def test_at_most_max_uploads_run_at_once_and_others_still_answer(
        provider: dict[str, Any]) -> None:
    stub = provider["stub"]
    hold = threading.Event()
    results: list[grpc.StatusCode] = []

    def held() -> Iterator[pb.StateChunk]:
        yield header()
        while not hold.wait(IDLE_S / 4):
            yield pb.StateChunk(data=b"")  # keeps the stream alive, carries nothing

    threads = [threading.Thread(target=lambda: results.append(upload(stub, held())[0]))
               for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(IDLE_S)
    code, detail, _ = upload(stub, drip(0.0))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "uploads are already" in detail
    assert stub.Identity(pb.Empty(), timeout=5).public_key  # other calls are served
    hold.set()
    for t in threads:
        t.join(30)
    code, _, _ = upload(stub, drip(0.0))  # the slots are free again
    assert code is grpc.StatusCode.OK


def test_no_reader_thread_outlives_its_upload(provider: dict[str, Any]) -> None:
    upload(provider["stub"], drip(IDLE_S * 3))  # ended by the idle limit
    end = time.monotonic() + 10
    while time.monotonic() < end and any(t.name == "upload-reader"
                                         for t in threading.enumerate()):
        time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name == "upload-reader"]


def test_a_reply_the_client_stops_reading_is_cancelled_at_its_limit() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from arbiter.stream_guard import StreamGuard

    ended = threading.Event()
    sent: list[int] = []

    def stream(_request: bytes, _context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            for i in range(int(_request or b"1000")):
                sent.append(i)
                yield b"\0" * (1 << 20)
        finally:
            ended.set()

    handler = grpc.method_handlers_generic_handler(
        "verde.test.Slow", {"Stream": grpc.unary_stream_rpc_method_handler(stream)})
    server = grpc.server(ThreadPoolExecutor(max_workers=4),
                         interceptors=[StreamGuard((), reply_max_s=1.5)],
                         options=[("grpc.max_send_message_length", 2 << 20)])
    server.add_generic_rpc_handlers([handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}",
                                    options=[("grpc.max_receive_message_length", 2 << 20)])
    try:
        call = channel.unary_stream("/verde.test.Slow/Stream")
        assert len(list(call(b"20", timeout=30))) == 20  # a reader that reads gets it all
        ended.clear()
        sent.clear()
        replies = call(b"", timeout=None)  # then reads one message and stops reading
        next(replies)
        start = time.monotonic()
        assert ended.wait(15), "the blocked reply was never cancelled"
        assert time.monotonic() - start < 10 and len(sent) < 1000
        replies.cancel()
    finally:
        channel.close()
        server.stop(0)
