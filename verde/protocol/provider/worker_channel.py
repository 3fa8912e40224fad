"""The channel between a provider and a partition worker on another machine: frames that each
side knows came from the other, unaltered and in order.

Why it must be authenticated: a provider commits to the states its workers' gradients produce.
A worker that is not the provider's own (an impostor at the address, or a machine in the
middle changing bytes) could make an honest provider commit to a wrong state and lose the
dispute over it, the one thing verde must never let happen. So provider and worker share a
secret (32 random bytes, ``verde provider worker-secret FILE`` writes one) and:

1. Handshake. The provider sends the protocol line and a fresh nonce ``np``; the worker
   answers with the line, its own nonce ``nw`` and ``HMAC(secret, "worker" | np | nw)``; the
   provider checks it and answers ``HMAC(secret, "provider" | np | nw)``, which the worker
   checks. Each side has proved it holds the secret for this connection only (fresh nonces:
   nothing recorded earlier can be replayed), and neither tag can stand for the other (labels).
2. Frames. Every frame (``partition_worker``'s header and safetensors payload) is followed by
   ``HMAC(session, direction | sequence number | frame)`` with ``session = HMAC(secret,
   "session" | np | nw)``: a frame altered, dropped, replayed, reordered or reflected back to
   its sender fails its tag, and nothing of it is parsed before the tag is checked.

The bytes are authenticated, not encrypted (parameters and gradients can be read on the
wire): run workers on a network you would send the model over, or through a tunnel. HMAC is
SHA-256 (RFC 2104); tags are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch

from verde.protocol.provider.partition_worker import (
    FrameError,
    decode_frame,
    encode_frame,
    read_exactly,
    read_raw_frame,
)

PROTOCOL = b"verde-partition-worker/1\n"
SECRET_BYTES = 32
NONCE_BYTES = 32
TAG_BYTES = 32


class ChannelError(FrameError):
    """The peer is not a verde worker or provider holding the same secret, or a frame's tag
    does not match (altered, replayed, reordered or reflected)."""


def new_worker_secret() -> str:
    """A fresh secret, as the hex text a secret file holds."""
    return secrets.token_hex(SECRET_BYTES)


def secret_fingerprint(secret: bytes) -> str:
    """A short name for a secret that does not reveal it (logs: which secret a worker and a
    provider hold)."""
    return hashlib.sha256(b"verde-worker-secret-id\0" + secret).hexdigest()[:16]


def load_worker_secret(path: str | Path) -> bytes:
    """The secret in ``path`` (64 hex digits), or one ``ValueError`` naming the file."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"worker secret {path}: cannot read it ({exc})") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"worker secret {path}: expected {2 * SECRET_BYTES} hex digits "
                         "(write one with `verde provider worker-secret FILE`)")
    return secret


def _tag(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def _read(src: IO[bytes], size: int, what: str) -> bytes:
    data = read_exactly(src, size)
    if data is None:
        raise ChannelError(f"the peer closed the connection during the {what}")
    return data


class WorkerChannel:
    """Authenticated frames over a pair of byte streams (a socket's, in practice); make one
    with :meth:`provider_side` or :meth:`worker_side`, which run the handshake."""

    def __init__(self, src: IO[bytes], dst: IO[bytes], session: bytes, *, sends: bytes,
                 receives: bytes) -> None:
        self._src, self._dst, self._session = src, dst, session
        self._sends, self._receives = sends, receives
        self._sent = self._received = 0

    @classmethod
    def provider_side(cls, src: IO[bytes], dst: IO[bytes], secret: bytes) -> WorkerChannel:
        """Connect as the provider: the worker must prove it holds ``secret``."""
        ours = secrets.token_bytes(NONCE_BYTES)
        dst.write(PROTOCOL + ours)
        dst.flush()
        if _read(src, len(PROTOCOL), "handshake") != PROTOCOL:
            raise ChannelError("the peer is not a verde partition worker")
        theirs = _read(src, NONCE_BYTES, "handshake")
        if not hmac.compare_digest(_read(src, TAG_BYTES, "handshake"),
                                   _tag(secret, b"worker", ours, theirs)):
            raise ChannelError("the worker does not hold this provider's worker secret")
        dst.write(_tag(secret, b"provider", ours, theirs))
        dst.flush()
        return cls(src, dst, _tag(secret, b"session", ours, theirs), sends=b"P",
                   receives=b"W")

    @classmethod
    def worker_side(cls, src: IO[bytes], dst: IO[bytes], secret: bytes) -> WorkerChannel:
        """Accept a provider: it must prove it holds ``secret``."""
        if _read(src, len(PROTOCOL), "handshake") != PROTOCOL:
            raise ChannelError("the peer is not a verde provider")
        theirs = _read(src, NONCE_BYTES, "handshake")
        ours = secrets.token_bytes(NONCE_BYTES)
        dst.write(PROTOCOL + ours + _tag(secret, b"worker", theirs, ours))
        dst.flush()
        if not hmac.compare_digest(_read(src, TAG_BYTES, "handshake"),
                                   _tag(secret, b"provider", theirs, ours)):
            raise ChannelError("the provider does not hold this worker's secret")
        return cls(src, dst, _tag(secret, b"session", theirs, ours), sends=b"W",
                   receives=b"P")

    def send(self, header: Mapping[str, Any],
             tensors: Mapping[str, torch.Tensor] | None = None) -> None:
        raw = encode_frame(header, tensors)
        tag = _tag(self._session, self._sends, self._sent.to_bytes(8, "big"), raw)
        self._sent += 1
        self._dst.write(raw + tag)
        self._dst.flush()

    def receive(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        """The next frame; None when the peer closed the connection between frames."""
        raw = read_raw_frame(self._src)
        if raw is None:
            return None
        tag = _read(self._src, TAG_BYTES, "frame")
        expected = _tag(self._session, self._receives, self._received.to_bytes(8, "big"), raw)
        if not hmac.compare_digest(tag, expected):
            raise ChannelError(f"frame {self._received} from the peer failed its "
                               "authentication tag (altered, replayed or out of order)")
        self._received += 1
        return decode_frame(raw)
