"""The provider interface the arbiter and client talk to (in-process or over gRPC).

Kept minimal and message-oriented so the gRPC implementation is a thin translation: every
call carries JSON-able values, ``SignedMessage``s and ``TensorBlob``s only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from proofs import SignedMessage, VerifyKey
from verde.peers.messages import Answer, Query


@runtime_checkable
class ProviderPeer(Protocol):
    """A compute provider as seen by a client or an arbiter."""

    @property
    def identity(self) -> VerifyKey:
        """The provider's Ed25519 public key; every answer it signs verifies under it."""
        ...

    def submit(self, spec: Mapping[str, Any]) -> str:
        """Start (or, in-process, run) the job described by a spec dict; returns the job id."""
        ...

    def result(self, job_id: str) -> SignedMessage:
        """The signed result: final state digest and Merkle root over the step digests."""
        ...

    def answer(self, query: Query) -> Answer:
        """Answer one dispute query; raises ``PeerTimeout`` if no answer came by the deadline."""
        ...
