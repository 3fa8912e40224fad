"""Where a provider can be reached, in its own words: signed endpoint records and challenges.

Why: an arbiter rules against a party that stays silent past a deadline. If anyone could name
the address the arbiter uses for a party, an adversary could name one where nothing listens and
have an honest provider condemned for silence -- or open a dispute first with such an address,
pre-empting the client's own (issue: framing and front-running). So an address counts only if
the provider itself vouched for it: an :class:`EndpointRecord` is a message the provider signs
(``MessageContext(job "*", kind "endpoint")``) naming its address and a validity window; a newer
record replaces an older one. And when the arbiter connects, the party at that address must
sign a fresh :func:`challenge` with the same key, so a vouched address now held by someone else
is not mistaken for the provider.

Silence counts against a party only at an address it vouched for, after a successful challenge,
and only once the deadline passed; anything else is "could not reach", not a loss.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from proofs import MessageContext, SignedMessage, SigningKey, VerifyKey, sign_message
from proofs.errors import ProofError
from proofs.messages import verify_message
from verde.protocol.peers import fields as f
from verde.protocol.peers.errors import PeerError

ENDPOINT_KIND = "endpoint"
CHALLENGE_KIND = "endpoint-challenge"
_ANY_JOB = "*"
#: How long a record is valid unless the provider says otherwise (it renews before then).
DEFAULT_ENDPOINT_TTL_S = 24 * 3600
#: A record issued this far in the future is refused (clock skew allowance).
MAX_CLOCK_SKEW_S = 300
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*")


class InvalidEndpoint(PeerError):
    """An endpoint record or challenge answer is malformed, expired, or not the party's."""


def check_address(address: str) -> str:
    """``host:port`` with a DNS name or an IP literal (IPv6 in brackets) and a port 1-65535."""
    if not isinstance(address, str) or len(address) > 255:
        raise InvalidEndpoint(f"an address is host:port, got {address!r}")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidEndpoint(f"an address is host:port, got {address!r}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidEndpoint(f"an IPv6 address is written [host]:port, got {address!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidEndpoint(f"{host} is not an IPv6 address") from None
    elif not _HOST.fullmatch(host):
        raise InvalidEndpoint(f"{host!r} is not a host name or IPv4 address")
    return address


@dataclass(frozen=True)
class EndpointRecord:
    """A provider's signed statement: "I answer at ``address`` from ``issued_at`` until
    ``expires_at`` (unix seconds)"."""

    signed: SignedMessage

    @property
    def signer(self) -> VerifyKey:
        return self.signed.signer

    @property
    def address(self) -> str:
        return str(self.signed.payload["address"])

    @property
    def issued_at(self) -> int:
        return int(self.signed.payload["issued_at"])

    @property
    def expires_at(self) -> int:
        return int(self.signed.payload["expires_at"])

    def to_json(self) -> dict[str, Any]:
        return self.signed.to_json()

    @classmethod
    def from_json(cls, data: Any) -> EndpointRecord:
        """Read a record and check its signature and fields (not its validity window)."""
        try:
            signed = SignedMessage.from_json(data)
            verify_message(signed, MessageContext(_ANY_JOB, None, None, ENDPOINT_KIND))
        except (ProofError, TypeError, ValueError) as exc:
            raise InvalidEndpoint(f"endpoint record: {exc}") from None
        d = f.exact_fields(signed.payload, {"address", "issued_at", "expires_at"},
                           "endpoint record")
        check_address(f.text(d, "address", "endpoint record"))
        issued, expires = (f.integer(d, k, "endpoint record") for k in ("issued_at",
                                                                         "expires_at"))
        if expires <= issued:
            raise InvalidEndpoint("endpoint record: it expires before it is issued")
        return cls(signed)

    def check(self, signer: VerifyKey | str, now: float | None = None) -> EndpointRecord:
        """This record, if it is ``signer``'s and valid at ``now``; ``InvalidEndpoint`` if not."""
        expected = signer if isinstance(signer, str) else signer.hex()
        if self.signer.hex() != expected:
            raise InvalidEndpoint(f"endpoint record is signed by {self.signer.hex()[:16]}, not "
                                  f"by the party {expected[:16]}")
        now = time.time() if now is None else now
        if self.issued_at > now + MAX_CLOCK_SKEW_S:
            raise InvalidEndpoint(f"endpoint record of {expected[:16]} is issued in the future")
        if self.expires_at <= now:
            raise InvalidEndpoint(f"endpoint record of {expected[:16]} for {self.address} "
                                  f"expired {int(now - self.expires_at)} s ago")
        return self


def sign_endpoint(key: SigningKey, address: str, *, ttl_s: int = DEFAULT_ENDPOINT_TTL_S,
                  now: float | None = None) -> EndpointRecord:
    """A fresh record for ``address``, valid for ``ttl_s`` seconds."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s <= 0:
        raise ValueError(f"ttl_s must be a positive int, got {ttl_s!r}")
    issued = int(time.time() if now is None else now)
    payload = {"address": check_address(address), "issued_at": issued,
               "expires_at": issued + ttl_s}
    return EndpointRecord(sign_message(key, MessageContext(_ANY_JOB, None, None, ENDPOINT_KIND),
                                       payload))


def newest_valid(records: list[EndpointRecord], signer: VerifyKey | str,
                 now: float | None = None) -> EndpointRecord | None:
    """The most recently issued of ``records`` that is ``signer``'s and valid now, if any."""
    valid = []
    for record in records:
        try:
            valid.append(record.check(signer, now))
        except InvalidEndpoint:
            continue
    return max(valid, key=lambda r: (r.issued_at, r.expires_at), default=None)


def new_challenge() -> str:
    """A fresh random nonce (hex) for one connection's proof of key possession."""
    return os.urandom(16).hex()


def answer_challenge(key: SigningKey, nonce: str, address: str) -> SignedMessage:
    """The provider's proof that it holds ``key`` and answers at ``address`` right now."""
    payload = {"nonce": nonce, "address": address}
    return sign_message(key, MessageContext(_ANY_JOB, None, None, CHALLENGE_KIND), payload)


def check_challenge(answer: Any, nonce: str, address: str, signer: VerifyKey | str) -> None:
    """Raise ``InvalidEndpoint`` unless ``answer`` is ``signer``'s signature over this nonce
    and address (a replayed or another party's answer does not pass)."""
    expected = signer if isinstance(signer, str) else signer.hex()
    try:
        signed = answer if isinstance(answer, SignedMessage) else SignedMessage.from_json(answer)
        verify_message(signed, MessageContext(_ANY_JOB, None, None, CHALLENGE_KIND))
    except (ProofError, TypeError, ValueError) as exc:
        raise InvalidEndpoint(f"challenge answer: {exc}") from None
    if signed.signer.hex() != expected:
        raise InvalidEndpoint(f"the party at {address} holds key {signed.signer.hex()[:16]}, "
                              f"not {expected[:16]}")
    if signed.payload != {"nonce": nonce, "address": address}:
        raise InvalidEndpoint(f"the challenge answer from {address} is for another challenge")
