"""The provider-worker channel: both sides must hold the secret, and a frame altered, replayed,
reordered or reflected is refused before it is parsed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from verde.protocol.provider.partition_worker import encode_frame
from verde.protocol.provider.worker_channel import (
    PROTOCOL,
    ChannelError,
    WorkerChannel,
    load_worker_secret,
    new_worker_secret,
    secret_fingerprint,
)

SECRET = bytes(range(32))
OTHER = bytes(range(1, 33))


@pytest.fixture
def pair() -> Iterator[tuple[Any, Any, socket.socket, socket.socket]]:
    """Two connected byte streams (a local socket pair) and their sockets."""
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    fa, fb = a.makefile("rwb"), b.makefile("rwb")
    yield fa, fb, a, b
    for f in (fa, fb):
        f.close()
    a.close()
    b.close()


def _both(pair: tuple[Any, Any], provider_secret: bytes = SECRET,
          worker_secret: bytes = SECRET) -> tuple[Any, Any]:
    """(provider channel or its error, worker channel or its error), handshaken in parallel."""
    out: dict[str, Any] = {}

    def run(name: str, fn: Callable[[], WorkerChannel]) -> None:
        try:
            out[name] = fn()
        except ChannelError as exc:
            out[name] = exc
        if isinstance(out[name], ChannelError):  # let the other side see the end, not hang
            pair[2 if name == "provider" else 3].shutdown(socket.SHUT_RDWR)

    p, w = pair[:2]
    t = threading.Thread(target=run, args=("worker", lambda: WorkerChannel.worker_side(
        w, w, worker_secret)))
    t.start()
    run("provider", lambda: WorkerChannel.provider_side(p, p, provider_secret))
    t.join(10)
    return out["provider"], out["worker"]


def test_frames_go_both_ways_in_order(pair) -> None:
    provider, worker = _both(pair)
    grad = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    for step in range(3):
        provider.send({"step": step}, {"p": grad + step})
        header, tensors = worker.receive()
        assert header == {"step": step} and torch.equal(tensors["p"], grad + step)
        worker.send({"ok": True}, {"g": tensors["p"] * 2})
        assert torch.equal(provider.receive()[1]["g"], (grad + step) * 2)


def test_a_worker_without_the_secret_is_refused(pair) -> None:
    provider, worker = _both(pair, worker_secret=OTHER)
    assert isinstance(provider, ChannelError)
    assert "worker does not hold this provider's worker secret" in str(provider)
    assert isinstance(worker, ChannelError)  # it never learns a valid provider tag


def test_a_provider_without_the_secret_is_refused(pair) -> None:
    # The worker's own tag is checked by the provider first; a provider with another secret
    # stops there, and a peer that skips the check cannot produce the provider's tag.
    p, w = pair[:2]
    result: dict[str, Any] = {}

    def worker() -> None:
        try:
            result["w"] = WorkerChannel.worker_side(w, w, SECRET)
        except ChannelError as exc:
            result["w"] = exc

    t = threading.Thread(target=worker)
    t.start()
    p.write(PROTOCOL + b"\0" * 32)
    p.flush()
    p.read(len(PROTOCOL) + 64)  # the worker's nonce and tag
    p.write(b"\1" * 32)  # a guessed provider tag
    p.flush()
    t.join(10)
    assert isinstance(result["w"], ChannelError)
    assert "provider does not hold this worker's secret" in str(result["w"])


def test_a_peer_speaking_something_else_is_refused(pair) -> None:
    p, w = pair[:2]
    p.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\0" * 64)
    p.flush()
    with pytest.raises(ChannelError, match="not a verde provider"):
        WorkerChannel.worker_side(w, w, SECRET)


def _raw_next(stream: Any) -> bytes:
    """The next frame and its tag, as bytes (read off the wire by a machine in the middle)."""
    from verde.protocol.provider.partition_worker import read_raw_frame

    raw = read_raw_frame(stream)
    assert raw is not None
    return raw + stream.read(32)


@pytest.fixture
def middle() -> Iterator[tuple[WorkerChannel, Any, WorkerChannel, Any]]:
    """A provider and a worker whose bytes pass through the test (the middle)."""
    a1, m1 = socket.socketpair()
    m2, b2 = socket.socketpair()
    fa, fm1, fm2, fb = (s.makefile("rwb") for s in (a1, m1, m2, b2))
    relay = threading.Thread(target=lambda: _relay_handshake(fm1, fm2))
    relay.start()
    out: dict[str, WorkerChannel] = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "w", WorkerChannel.worker_side(fb, fb, SECRET)))
    t.start()
    provider = WorkerChannel.provider_side(fa, fa, SECRET)
    t.join(10)
    relay.join(10)
    yield provider, fm1, out["w"], fm2
    for f in (fa, fm1, fm2, fb):
        f.close()
    for s in (a1, m1, m2, b2):
        s.close()


def _relay_handshake(from_provider: Any, to_worker: Any) -> None:
    to_worker.write(from_provider.read(len(PROTOCOL) + 32))
    to_worker.flush()
    from_provider.write(to_worker.read(len(PROTOCOL) + 64))
    from_provider.flush()
    to_worker.write(from_provider.read(32))
    to_worker.flush()


def test_the_middle_passing_frames_unchanged_is_fine(middle) -> None:
    provider, from_provider, worker, to_worker = middle
    provider.send({"step": 1}, {"p": torch.ones(3)})
    to_worker.write(_raw_next(from_provider))
    to_worker.flush()
    assert worker.receive()[0] == {"step": 1}


@pytest.mark.parametrize("where", [20, -40, -1])  # header, payload, tag
def test_an_altered_frame_is_refused(middle, where: int) -> None:
    provider, from_provider, worker, to_worker = middle
    provider.send({"step": 1}, {"p": torch.ones(3)})
    data = bytearray(_raw_next(from_provider))
    data[where] ^= 1
    to_worker.write(bytes(data))
    to_worker.flush()
    with pytest.raises(ChannelError, match="frame 0 from the peer failed"):
        worker.receive()


def test_a_replayed_frame_is_refused(middle) -> None:
    provider, from_provider, worker, to_worker = middle
    provider.send({"step": 1}, {"p": torch.ones(3)})
    frame = _raw_next(from_provider)
    to_worker.write(frame + frame)
    to_worker.flush()
    assert worker.receive()[0] == {"step": 1}
    with pytest.raises(ChannelError, match="frame 1 from the peer failed"):
        worker.receive()


def test_a_frame_reflected_to_its_sender_is_refused(middle) -> None:
    provider, from_provider, _, _ = middle
    provider.send({"ok": True}, {"g": torch.ones(3)})
    from_provider.write(_raw_next(from_provider))  # back to the provider, as if the worker's
    from_provider.flush()
    with pytest.raises(ChannelError, match="failed its authentication tag"):
        provider.receive()


def test_an_unauthenticated_frame_is_refused(middle) -> None:
    _, _, worker, to_worker = middle
    to_worker.write(encode_frame({"step": 1}) + b"\0" * 32)
    to_worker.flush()
    with pytest.raises(ChannelError):
        worker.receive()


def test_secret_files(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text(new_worker_secret() + "\n")
    assert len(load_worker_secret(good)) == 32
    assert secret_fingerprint(load_worker_secret(good)) != secret_fingerprint(SECRET)
    for name, text in (("short", "ab" * 16), ("nothex", "zz" * 32), ("empty", "")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"worker secret .*{name}: expected 64 hex digits"):
            load_worker_secret(tmp_path / name)
    with pytest.raises(ValueError, match="cannot read it"):
        load_worker_secret(tmp_path / "missing")
