"""Drive a ``DisputeState`` against two peers: ask, turn replies into events, apply.

This loop is the in-process arbiter; the arbiter service runs the same loop with a database
commit between ``apply`` calls. ``retransmit=True`` delivers every query twice, as an
at-least-once network or an arbiter resuming after a crash would: an honest provider signs
the same answer again (Ed25519 signatures are deterministic), an equivocating one is caught.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from verde.protocol.dispute.state import DisputeState
from verde.protocol.dispute.verdict import Verdict
from verde.protocol.peers.errors import PeerError, PeerTimeout
from verde.protocol.peers.messages import Answer, Query
from verde.protocol.peers.protocol import ProviderPeer

Observer = Callable[[Query, dict[str, Any]], None]


@dataclass
class DisputeStats:
    """What a dispute cost: query rounds, messages and serialised bytes moved."""

    rounds: int = 0
    messages: int = 0
    bytes_moved: int = 0


def answer_event(query: Query, answer: Answer) -> dict[str, Any]:
    return {"type": "answer", "party": query.party, "round": query.round,
            "signed": answer.signed.to_json(),
            "blobs": {k: b.to_json() for k, b in answer.blobs.items()}}  # fmt: skip


def run_dispute(
    state: DisputeState,
    peers: Mapping[str, ProviderPeer],
    *,
    retransmit: bool = False,
    observer: Observer | None = None,
    stats: DisputeStats | None = None,
) -> Verdict:
    """Run the dispute to its verdict. ``peers`` maps "a"/"b" to the two providers."""
    stats = stats if stats is not None else DisputeStats()
    while not state.done:
        queries = state.next_queries()
        stats.rounds = max(stats.rounds, state.round)
        for query in queries:
            for attempt in range(2 if retransmit else 1):
                if state.done:
                    break
                stats.bytes_moved += query.size()
                stats.messages += 1
                try:
                    answer = peers[query.party].answer(query)
                except PeerTimeout:
                    event = {"type": "timeout", "party": query.party, "round": query.round}
                except PeerError:
                    event = {"type": "timeout", "party": query.party, "round": query.round}
                else:
                    stats.bytes_moved += answer.size()
                    stats.messages += 1
                    event = answer_event(query, answer)
                if event["type"] == "timeout" and attempt:
                    break
                if observer is not None:
                    observer(query, event)
                state.apply(event)
    assert state.verdict is not None
    return state.verdict
