"""Signed client requests: what a client puts in a call's metadata, and how a service checks it.

Why: providers run jobs and arbiters open disputes for whoever asks. A service started with an
allow list (``--allow-clients FILE``) takes new work only from the keys on it, so every
request that starts work must prove which key sent it, must not be replayable, and must not be
movable to another method or body. A client therefore sends four metadata entries with every
call:

``verde-client-key``        its Ed25519 public key, 64 hex characters
``verde-client-time``       the Unix time in whole seconds when it signed
``verde-client-nonce``      32 random hex characters, never reused
``verde-client-signature``  128 hex characters: Ed25519 over ``canonical_json({"domain":
                            "verde/client-request/v1", "method": "/verde.v1.Provider/SubmitJob",
                            "body": sha256(serialized request) hex, "time": T, "nonce": N})``

For a client-streaming call (a state upload) ``body`` is the SHA-256 of the first message (the
headers announcing every tensor's name, dtype, shape and size; ``sha256(b"")`` for an empty
stream), so the service authenticates the caller before it reads any tensor data; the data
itself is bound by content addressing (the service replies with the state root, which the
client checks). The service accepts a signature only within ``window_s`` of its own clock and
only once per (key, nonce) within that window (:class:`ReplayCache`, bounded: when full of
live nonces it refuses new requests rather than forget one).
"""

from __future__ import annotations

import hashlib
import heapq
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from arbiter.errors import ArbiterInputError, NotAllowed, Unauthenticated
from proofs import InvalidSignature, MalformedInput, SigningKey, VerifyKey, canonical_json

REQUEST_DOMAIN = "verde/client-request/v1"
KEY_HEADER = "verde-client-key"
TIME_HEADER = "verde-client-time"
NONCE_HEADER = "verde-client-nonce"
SIGNATURE_HEADER = "verde-client-signature"
HEADERS = (KEY_HEADER, TIME_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
#: Seconds a signed request stays valid either side of the service's clock.
DEFAULT_WINDOW_S = 120.0
#: (key, nonce) pairs remembered at most; more live ones than this refuse new requests.
DEFAULT_REPLAY_ENTRIES = 1 << 17

_HEX64 = re.compile(r"[0-9a-f]{64}")
_NONCE = re.compile(r"[0-9a-f]{32}")


def body_digest(raw: bytes) -> bytes:
    """SHA-256 of one serialized request message (what the signature binds)."""
    return hashlib.sha256(raw).digest()


def request_bytes(method: str, body: bytes, timestamp: int, nonce: str) -> bytes:
    """The exact bytes a client signs for one call (see the module docstring)."""
    return canonical_json({"domain": REQUEST_DOMAIN, "method": method, "body": body.hex(),
                           "time": timestamp, "nonce": nonce})


def sign_request(key: SigningKey, method: str, body: bytes, *, now: float | None = None,
                 nonce: str | None = None) -> list[tuple[str, str]]:
    """The metadata entries that sign a call of ``method`` with body digest ``body``."""
    timestamp = int(time.time() if now is None else now)
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    signature = key.sign(request_bytes(method, body, timestamp, nonce))
    return [(KEY_HEADER, key.public_key.hex()), (TIME_HEADER, str(timestamp)),
            (NONCE_HEADER, nonce), (SIGNATURE_HEADER, signature.hex())]


@dataclass(frozen=True)
class SignedRequest:
    """The four metadata entries of one call, parsed (not yet verified)."""

    key: VerifyKey
    timestamp: int
    nonce: str
    signature: bytes

    @classmethod
    def from_metadata(cls, metadata: Sequence[tuple[str, str | bytes]] | None
                      ) -> SignedRequest | None:
        """None when the call carries no signature at all; ``Unauthenticated`` when it carries
        a partial or malformed one."""
        found: dict[str, str] = {}
        for name, value in metadata or ():
            if name in HEADERS:
                if name in found:
                    raise Unauthenticated(f"request metadata {name} appears more than once")
                found[name] = value if isinstance(value, str) else value.decode("latin-1")
        if not found:
            return None
        missing = [h for h in HEADERS if h not in found]
        if missing:
            raise Unauthenticated(f"signed request lacks {', '.join(missing)}")
        key_hex, stamp, nonce, sig = (found[h] for h in HEADERS)
        if not _HEX64.fullmatch(key_hex):
            raise Unauthenticated(f"{KEY_HEADER} must be 64 lowercase hex characters")
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            raise Unauthenticated(f"{TIME_HEADER} must be Unix seconds, got {stamp[:20]!r}")
        if not _NONCE.fullmatch(nonce):
            raise Unauthenticated(f"{NONCE_HEADER} must be 32 lowercase hex characters")
        if not re.fullmatch(r"[0-9a-f]{128}", sig):
            raise Unauthenticated(f"{SIGNATURE_HEADER} must be 128 lowercase hex characters")
        try:
            key = VerifyKey.from_hex(key_hex)
        except MalformedInput:
            raise Unauthenticated(f"{KEY_HEADER} is not an Ed25519 public key") from None
        return cls(key, int(stamp), nonce, bytes.fromhex(sig))


class ReplayCache:
    """(key, nonce) pairs seen within the window, bounded (see the module docstring)."""

    def __init__(self, max_entries: int = DEFAULT_REPLAY_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be positive, got {max_entries}")
        self.max_entries = max_entries
        self._seen: set[tuple[str, str]] = set()
        self._expiries: list[tuple[float, str, str]] = []  # a heap, soonest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, key_hex: str, nonce: str, expires: float, now: float) -> None:
        """Record a first use; ``Unauthenticated`` for a second one (or when full)."""
        with self._lock:
            while self._expiries and self._expiries[0][0] <= now:
                _, k, n = heapq.heappop(self._expiries)
                self._seen.discard((k, n))
            if (key_hex, nonce) in self._seen:
                raise Unauthenticated(f"request nonce {nonce} of key {key_hex[:16]} was "
                                      "already used: a replayed request")
            if len(self._seen) >= self.max_entries:
                raise Unauthenticated("too many signed requests in the replay window: "
                                      "try again shortly")
            self._seen.add((key_hex, nonce))
            heapq.heappush(self._expiries, (expires, key_hex, nonce))


def load_allow_list(path: Path) -> frozenset[str]:
    """Public keys (64 hex characters), one per line; ``#`` starts a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArbiterInputError(f"allow list {path}: cannot read it: {exc}") from None
    keys: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip().lower()
        if not entry:
            continue
        if not _HEX64.fullmatch(entry):
            raise ArbiterInputError(f"allow list {path} line {number}: expected an Ed25519 "
                                    f"public key (64 hex characters), got {entry[:70]!r}")
        keys.add(entry)
    if not keys:
        raise ArbiterInputError(f"allow list {path}: no keys in it (an empty list would "
                                "refuse everyone; leave --allow-clients out to stay open)")
    return frozenset(keys)


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a verified key, or (open services only) an unsigned peer."""

    key_hex: str | None
    peer: str

    @property
    def name(self) -> str:
        """The key (hex) if signed, else ``anonymous@HOST`` (quotas count per name)."""
        return self.key_hex or f"anonymous@{_host_of(self.peer)}"


def _host_of(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` -> ``127.0.0.1`` (unsigned callers are counted per host)."""
    body = peer.split(":", 1)[1] if peer.startswith(("ipv4:", "ipv6:")) else peer
    return body.rsplit(":", 1)[0] or "unknown"


class RequestVerifier:
    """Checks signed requests against an allow list (``None``: open to everyone, but a
    signature that is present must still be valid)."""

    def __init__(self, allowed: frozenset[str] | None, *, window_s: float = DEFAULT_WINDOW_S,
                 replay: ReplayCache | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if window_s <= 0:
            raise ArbiterInputError(f"the request window must be positive, got {window_s:g}s")
        self.allowed = allowed
        self.window_s = window_s
        self.replay = replay or ReplayCache()
        self.clock = clock

    @property
    def open(self) -> bool:
        return self.allowed is None

    def verify(self, method: str, body: bytes,
               metadata: Sequence[tuple[str, str | bytes]] | None, peer: str) -> Caller:
        """The caller of one request, or ``Unauthenticated`` / ``NotAllowed``."""
        signed = SignedRequest.from_metadata(metadata)
        if signed is None:
            if self.open:
                return Caller(None, peer)
            raise Unauthenticated(f"{method.rsplit('/', 1)[-1]} needs a signed request: this "
                                  "service takes new work only from allowed client keys "
                                  "(sign with the client's key, e.g. verde delegate --key)")
        key_hex = signed.key.hex()
        try:
            signed.key.verify(signed.signature,
                              request_bytes(method, body, signed.timestamp, signed.nonce))
        except InvalidSignature:
            raise Unauthenticated(f"request signature does not verify for key {key_hex[:16]} "
                                  "(wrong key, or the request was altered)") from None
        now = self.clock()
        skew = signed.timestamp - now
        if abs(skew) > self.window_s:
            raise Unauthenticated(f"request signed at {signed.timestamp}, {abs(skew):.0f}s "
                                  f"{'ahead of' if skew > 0 else 'behind'} this service's "
                                  f"clock (window {self.window_s:g}s): a stale or replayed "
                                  "request, or a wrong clock")
        if self.allowed is not None and key_hex not in self.allowed:
            raise NotAllowed(f"client key {key_hex[:16]} is not on this service's allow list")
        self.replay.remember(key_hex, signed.nonce, signed.timestamp + self.window_s, now)
        return Caller(key_hex, peer)
