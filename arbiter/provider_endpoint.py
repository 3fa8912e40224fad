"""A provider's own word on where it answers: its signed endpoint record, kept fresh, and its
answers to connection challenges.

Why: an arbiter counts a provider's silence against it only at an address the provider itself
signed for (``verde.protocol.peers.endpoints``), so the provider serves that record
(``Endpoint``) and proves, when an arbiter connects, that the party answering at the address
holds the key (``Challenge``). The record is renewed before it expires: re-signed once half of
its validity has passed, so a long-running provider never serves an expired record.

A provider signs challenges only for the address it advertises: a relay at another address
that forwards the arbiter's challenge to the provider gets no signature it could present as
the provider's answer at the relay's address.
"""

from __future__ import annotations

import re
import threading
import time

from arbiter.errors import ArbiterError, ArbiterInputError
from proofs import SignedMessage, SigningKey
from verde.protocol.peers.endpoints import (
    DEFAULT_ENDPOINT_TTL_S,
    EndpointRecord,
    InvalidEndpoint,
    answer_challenge,
    check_address,
    sign_endpoint,
)

#: Nonces are hex, 16 to 64 bytes (the arbiter sends 16 random bytes).
_NONCE = re.compile(r"[0-9a-f]{32,128}")


class NoEndpoint(ArbiterError):
    """The provider does not advertise an address (yet): it cannot vouch for one."""


class ProviderEndpoint:
    """The advertised address of one provider, its signed record and its challenge answers."""

    def __init__(self, key: SigningKey, address: str | None = None, *,
                 ttl_s: int = DEFAULT_ENDPOINT_TTL_S) -> None:
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s < 2:
            raise ArbiterInputError(f"the endpoint record's lifetime must be at least 2 s, "
                                    f"got {ttl_s!r}")
        self.key = key
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._address: str | None = None
        self._record: EndpointRecord | None = None
        if address is not None:
            self.advertise(address)

    @property
    def address(self) -> str | None:
        return self._address

    def advertise(self, address: str) -> None:
        """Vouch for ``address`` from now on (a new record is signed at the next request)."""
        try:
            check_address(address)
        except InvalidEndpoint as exc:
            raise ArbiterInputError(f"--advertise: {exc}") from None
        with self._lock:
            self._address = address
            self._record = None

    def record(self, now: float | None = None) -> EndpointRecord:
        """The current record, re-signed once half of its lifetime has passed."""
        now = time.time() if now is None else now
        with self._lock:
            if self._address is None:
                raise NoEndpoint("this provider advertises no address")
            rec = self._record
            if rec is None or now >= rec.issued_at + self.ttl_s / 2 or now < rec.issued_at:
                rec = self._record = sign_endpoint(self.key, self._address, ttl_s=self.ttl_s,
                                                   now=now)
            return rec

    def answer(self, nonce: str, address: str) -> SignedMessage:
        """Sign ``nonce`` for our advertised ``address``; refuse any other address."""
        if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
            raise ArbiterInputError("a challenge nonce is 32 to 128 lowercase hex digits")
        own = self._address
        if own is None:
            raise NoEndpoint("this provider advertises no address")
        if address != own:
            raise ArbiterInputError(f"this provider answers at {own}, not at "
                                    f"{address[:300]!r}")
        return answer_challenge(self.key, nonce, own)
