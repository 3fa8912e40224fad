"""Uploads to a real provider on 127.0.0.1 land in its upload directory: a complete one as one
file, a truncated, oversized, stalled or over-store-limit one as nothing (and the status says
why), a file changed on disk is refused at submit by the root check, and the files go when the
provider stops."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from arbiter.access import AccessPolicy
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_app import RunningProvider, start_provider
from arbiter.provider_client import GrpcProviderPeer
from arbiter.status import RemoteError
from tests.arbiter.conftest import key_file
from tests.verde.protocol.init_jobs import init_spec, perturbed_state
from verde.protocol.peers.state import state_to_blobs

IDLE_S = 0.5
DATA = np.arange(4096, dtype="<f4").tobytes()  # 16 KiB


def chunks(data: bytes = DATA, *, announce: int | None = None, pause_s: float = 0.0,
           piece: int = 1000) -> Iterator[pb.StateChunk]:
    nbytes = len(data) if announce is None else announce
    yield pb.StateChunk(tensors=[pb.TensorHeader(name="w", dtype="float32",
                                                 shape=[nbytes // 4], nbytes=nbytes)])
    for start in range(0, len(data), piece):
        time.sleep(pause_s)
        yield pb.StateChunk(data=data[start:start + piece])


def put(running: RunningProvider, stream: Iterator[pb.StateChunk]) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        try:
            return grpc.StatusCode.OK, rpc.ProviderStub(channel).PutState(stream, timeout=30).root
        except grpc.RpcError as err:
            return err.code(), err.details() or ""


def files(directory: Path, wait_s: float = 0.0) -> list[str]:
    """The files there; with ``wait_s``, once no partial file is left (a cancelled stream's
    handler cleans up just after the client sees its status)."""
    end = time.monotonic() + wait_s
    while True:
        names = sorted(p.name for p in directory.iterdir())
        if not any(n.endswith(".part") for n in names) or time.monotonic() > end:
            return names


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[tuple[RunningProvider, Path]]:
    uploads = tmp_path / "uploads"
    running = start_provider(key_file(tmp_path, "disk"), "127.0.0.1:0",
                             access=AccessPolicy(upload_idle_s=IDLE_S),
                             max_state_bytes=64 << 10, max_stored_bytes=40 << 10,
                             upload_dir=uploads)
    try:
        yield running, uploads
    finally:
        running.close(0)


def test_an_upload_is_one_file_and_bad_ones_leave_none(provider) -> None:  # type: ignore[no-untyped-def]
    running, uploads = provider
    code, root = put(running, chunks())
    assert code is grpc.StatusCode.OK and files(uploads) == [next(uploads.iterdir()).name]
    kept = files(uploads)
    assert kept[0].startswith("upload-") and kept[0].endswith(".safetensors")
    cases = [
        (chunks(DATA[:-4], announce=len(DATA)), grpc.StatusCode.INVALID_ARGUMENT, "truncated"),
        (chunks(DATA + b"abcd", announce=len(DATA)), grpc.StatusCode.INVALID_ARGUMENT,
         "more bytes"),
        (chunks(bytes(80 << 10)), grpc.StatusCode.RESOURCE_EXHAUSTED, "more than the limit"),
        (chunks(bytes(48 << 10)), grpc.StatusCode.RESOURCE_EXHAUSTED, "bytes on disk"),
        (chunks(pause_s=IDLE_S * 3), grpc.StatusCode.DEADLINE_EXCEEDED, "idle"),
    ]
    for stream, status, detail in cases:
        code, text = put(running, stream)
        assert code is status and detail in text, (code, text)
        assert files(uploads, wait_s=5.0) == kept, detail
    assert put(running, chunks()) == (grpc.StatusCode.OK, root)  # still served


def test_stopping_removes_the_files_and_a_private_directory(tmp_path: Path) -> None:
    given = tmp_path / "given"
    for upload_dir in (given, None):
        running = start_provider(key_file(tmp_path, "stop"), "127.0.0.1:0",
                                 upload_dir=upload_dir)
        assert put(running, chunks())[0] is grpc.StatusCode.OK
        directory = running.host.provider.uploads.directory
        assert len(files(directory)) == 1
        running.close(0)
        assert (files(directory) == []) if upload_dir else not directory.exists()


def test_a_file_changed_on_disk_is_refused_at_submit(provider) -> None:  # type: ignore[no-untyped-def]
    running, uploads = provider
    state0 = perturbed_state(0.5)
    spec = init_spec(state0)
    with GrpcProviderPeer(f"127.0.0.1:{running.port}", transfer_timeout_s=30) as peer:
        assert peer.put_state(state_to_blobs(state0)) == spec.init["root"]
        (path,) = uploads.iterdir()
        data = bytearray(path.read_bytes())
        data[-64] ^= 1  # a bit of the last entry's bytes, the file's size unchanged
        path.write_bytes(bytes(data))
        with pytest.raises(RemoteError, match="root") as info:
            peer.submit(spec.to_dict())
        assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
        peer.put_state(state_to_blobs(state0))  # uploaded again: a good file, the job runs
        assert peer.submit(spec.to_dict()) == spec.job_id
