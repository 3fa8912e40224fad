"""Drive a ``DisputeState`` against two peers: ask, turn replies into events, apply.

This loop is the in-process arbiter; the arbiter service runs the same loop with a database
commit between ``apply`` calls. ``retransmit=True`` delivers every query twice, as an
at-least-once network or an arbiter resuming after a crash would: an honest provider signs
the same answer again (Ed25519 signatures are deterministic), an equivocating one is caught.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from verde.protocol.dispute.committee import SilenceStatement
from verde.protocol.dispute.state import DisputeState
from verde.protocol.dispute.verdict import Verdict
from verde.protocol.dispute.witness import DisputeStalled, Witness, answer_or_attestation
from verde.protocol.peers.endpoints import EndpointRecord
from verde.protocol.peers.errors import PeerError
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


def silence_event(state: DisputeState, query: Query,
                  endpoints: Mapping[str, EndpointRecord] | None = None,
                  witnesses: Sequence[Witness] = ()) -> dict[str, Any]:
    """The event for a party that did not answer ``query`` by its deadline.

    It names the party's endpoint record when known. Under a committee the committee is asked
    first (``verde.protocol.dispute.witness``): a member's answer is applied instead, and a
    timeout needs the committee's attestation (``DisputeStalled`` when neither comes).
    """
    event: dict[str, Any] = {"type": "timeout", "party": query.party, "round": query.round}
    record = (endpoints or {}).get(query.party)
    if record is not None:
        event["endpoint"] = record.to_json()
    if state.committee is None:
        return event
    if record is None:
        raise DisputeStalled(f"party {query.party} has no endpoint record: its silence cannot "
                             "be attested")
    statement = SilenceStatement(query.context, state.progress.keys[query.party],
                                 record.address, int(time.time()))
    seen = answer_or_attestation(state.committee, witnesses, statement, query)
    if isinstance(seen, Answer):
        return answer_event(query, seen)
    event["attestation"] = seen.to_json()
    return event


def run_dispute(
    state: DisputeState,
    peers: Mapping[str, ProviderPeer],
    *,
    retransmit: bool = False,
    observer: Observer | None = None,
    stats: DisputeStats | None = None,
    endpoints: Mapping[str, EndpointRecord] | None = None,
    witnesses: Sequence[Witness] = (),
) -> Verdict:
    """Run the dispute to its verdict. ``peers`` maps "a"/"b" to the two providers;
    ``endpoints`` and ``witnesses`` serve disputes under a committee (see :func:`silence_event`).
    """
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
                except PeerError:  # PeerTimeout included: silence, past the deadline
                    event = silence_event(state, query, endpoints, witnesses)
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
