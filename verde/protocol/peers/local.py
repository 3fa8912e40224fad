"""In-process transport: a ``ProviderPeer`` around a provider object in the same process.

Time is modelled, not waited for: a provider that refuses a query (``RefusedQuery``), or whose
simulated answer time (``delay``, seconds per query) exceeds the query's deadline, is
reported as ``PeerTimeout`` at once — what a real transport reports when the deadline passes.
Every message is serialised to count the bytes a network would move; uploaded states travel
as ``TensorBlob`` bytes and are rebuilt on the provider's side, as over a network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch

from proofs import SignedMessage, VerifyKey, canonical_json
from verde.protocol.peers.errors import PeerTimeout, RefusedQuery, StateRootMismatch
from verde.protocol.peers.messages import Answer, Query, TensorBlob
from verde.protocol.peers.state import StateEntries, blobs_to_state, state_root_hex


class InProcessProvider(Protocol):
    """What a provider object in this process offers (``verde.protocol.provider.Provider``
    does; a test double only needs the calls it is asked)."""

    @property
    def identity(self) -> VerifyKey: ...

    def submit(self, spec: Mapping[str, Any]) -> str: ...

    def result(self, job_id: str) -> SignedMessage: ...

    def answer(self, query: Query) -> Answer: ...

    def put_state(self, state: Mapping[str, torch.Tensor]) -> str: ...

    def fetch_state(self, job_id: str, names: Sequence[str]) -> StateEntries: ...


class LocalPeer:
    """Wraps any object with ``identity``, ``submit``, ``result`` and ``answer`` (and, for the
    state exchange, ``put_state`` and ``fetch_state`` as ``verde.protocol.provider.Provider``
    has)."""

    def __init__(
        self, provider: InProcessProvider, name: str = "",
        delay: Callable[[Query], float] | None = None
    ) -> None:
        self.provider = provider
        self.delay = delay
        self.name = name or getattr(provider, "name", "") or "provider"
        self.bytes_sent = 0
        self.bytes_received = 0
        self.messages = 0

    @property
    def identity(self) -> VerifyKey:
        return self.provider.identity

    def submit(self, spec: Mapping[str, Any]) -> str:
        self.bytes_sent += len(canonical_json(dict(spec)))
        return self.provider.submit(spec)

    def result(self, job_id: str) -> SignedMessage:
        message = self.provider.result(job_id)
        self.bytes_received += len(canonical_json(message.to_json()))
        return message

    def answer(self, query: Query) -> Answer:
        self.bytes_sent += query.size()
        self.messages += 1
        if self.delay is not None and self.delay(query) > query.deadline_s:
            raise PeerTimeout(
                f"{self.name} answered {query.kind} (round {query.round}) after "
                f"{self.delay(query):g}s, past the {query.deadline_s:g}s deadline"
            )
        try:
            answer = self.provider.answer(query)
        except RefusedQuery as exc:
            raise PeerTimeout(
                f"{self.name} did not answer {query.kind} (round {query.round}) within "
                f"{query.deadline_s:g}s"
            ) from exc
        self.bytes_received += answer.size()
        return answer

    def wait(self, job_id: str, *, timeout_s: float = 0.0) -> None:
        self.provider.result(job_id)  # raises if the provider never ran the job

    def put_state(self, state: Mapping[str, TensorBlob]) -> str:
        tensors = blobs_to_state(state)
        expected = state_root_hex(tensors)
        self.bytes_sent += sum(len(name) + len(b.data) + 64 for name, b in state.items())
        self.messages += 1
        root = self.provider.put_state(tensors)
        if root != expected:
            raise StateRootMismatch(f"{self.name} stored the uploaded state as {root}, "
                                    f"its root is {expected}")
        return root

    def fetch_state(self, job_id: str, names: Sequence[str]) -> StateEntries:
        self.bytes_sent += len(canonical_json({"job_id": job_id, "names": list(names)}))
        self.messages += 1
        entries = self.provider.fetch_state(job_id, list(names))
        self.bytes_received += entries.size()
        return entries
