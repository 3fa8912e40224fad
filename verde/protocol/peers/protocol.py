"""The provider interface the arbiter and client talk to (in-process or over gRPC).

Kept minimal and message-oriented so the gRPC implementation is a thin translation: every
call carries JSON-able values, ``SignedMessage``s and ``TensorBlob``s only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from proofs import SignedMessage, VerifyKey
from verde.protocol.peers.messages import Answer, Query, TensorBlob
from verde.protocol.peers.state import StateEntries


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


@runtime_checkable
class StateExchangePeer(ProviderPeer, Protocol):
    """A provider that also takes uploaded states and serves entries of a job's final state."""

    def put_state(self, state: Mapping[str, TensorBlob]) -> str:
        """Upload a state; returns its ``StateCommitment`` root hex, checked against the one
        the caller computes itself (``StateRootMismatch`` if the provider names another)."""
        ...

    def wait(self, job_id: str, *, timeout_s: float) -> None:
        """Block until the submitted job is done; raises if it failed or ``timeout_s`` passed
        (in process, ``submit`` already ran the job and this only checks that it exists)."""
        ...

    def fetch_state(self, job_id: str, names: Sequence[str]) -> StateEntries:
        """Entries of the job's final state with digests and proofs (unverified: check them
        with ``verde.protocol.peers.state.verify_state_entries`` against the signed final root)."""
        ...
