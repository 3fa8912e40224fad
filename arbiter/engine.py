"""The arbiter's dispute engine: verde's state machine, made durable and shareable.

A dispute is stored as its opening (spec, both signed results, the parties' addresses) plus
its event log. Working on it means: claim its lease, rebuild the state by replaying the log
(every check runs again), then loop — ask the parties the current queries, apply each answer
or timeout, and **commit the event before asking the next question**. A killed arbiter
therefore loses at most the answers it had not committed; when it (or any other arbiter
process on the same database) claims the dispute again, it replays the log and re-asks the
same queries, which honest providers answer with the same signed bytes (Ed25519 signatures
are deterministic; a different answer is an equivocation).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arbiter.codec import dump_json, parse_json
from arbiter.errors import ArbiterError, ArbiterInputError, LeaseLost
from arbiter.storage.store import DisputeRecord, Store
from proofs import ProofError, SignedMessage, SigningKey, canonical_json, verify_message
from verde.errors import VerdeError
from verde.protocol.dispute.driver import answer_event
from verde.protocol.dispute.state import DisputeState
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.errors import PeerError
from verde.protocol.peers.protocol import ProviderPeer
from verde.protocol.peers.result import check_result

log = logging.getLogger("verde.arbiter")

PeerFactory = Callable[[str], ProviderPeer]
Certifier = Callable[[DisputeState, SigningKey], dict[str, Any]]
ProgressHook = Callable[[str, DisputeState], None]


@dataclass(frozen=True)
class OpenedDispute:
    dispute_id: str
    job_id: str
    status: str


class ArbiterEngine:
    """Opens disputes and drives them to verdicts on a shared :class:`Store`."""

    def __init__(self, store: Store, key: SigningKey, peer_factory: PeerFactory, *,
                 owner: str | None = None, lease_s: float = 60.0, deadline_s: float = 30.0,
                 certify: Certifier | None = None,
                 on_event: ProgressHook | None = None) -> None:
        if not 0 < deadline_s < lease_s:
            raise ArbiterInputError(f"need 0 < deadline_s ({deadline_s}) < lease_s ({lease_s})")
        self.store = store
        self.key = key
        self.peer_factory = peer_factory
        self.owner = owner or key.public_key.hex()[:32]
        self.lease_s = lease_s
        self.deadline_s = deadline_s
        self.certify = certify
        self.on_event = on_event
        self._peers: dict[str, ProviderPeer] = {}
        self._peers_lock = threading.Lock()
        self._active: set[str] = set()
        self._claim_lock = threading.Lock()
        # Rebuilding and checking a state runs the arbiter's shape-only replay and its one
        # recomputation: CPU work on shared torch modules, done one dispute at a time; the
        # waits for providers' answers run concurrently.
        self._compute_lock = threading.Lock()
        # Set when this process opens a dispute, so an idle worker starts at once instead of
        # at its next poll (other processes' disputes are still found by polling).
        self._wake = threading.Event()

    # -- opening ------------------------------------------------------------------------
    def open_dispute(self, spec: Mapping[str, Any],
                     entries: Sequence[tuple[str, str]]) -> OpenedDispute:
        """Open a dispute between two (address, signed result JSON) entries."""
        if len(entries) != 2:
            raise ArbiterInputError(
                f"a dispute is between exactly two providers, got {len(entries)}")
        job = JobSpec.from_mapping(spec)
        results = []
        for address, text in entries:
            message = SignedMessage.from_json(parse_json(text, f"result of {address}"))
            # Check before storing anything: a forged result must neither be recorded nor
            # cost the provider it names a dispute.
            verify_message(message)
            check_result(message, job.job_id, job.steps)
            results.append(message)
        state = DisputeState(job, results[0], results[1], deadline_s=self.deadline_s)
        opening = {"state": state.to_json(),
                   "addresses": {"a": entries[0][0], "b": entries[1][0]}}
        self.store.put_job(job.job_id, canonical_json(job.to_dict()).decode())
        for (address, text), result in zip(entries, results, strict=True):
            key_hex = result.signer.hex()
            self.store.upsert_provider(key_hex, address)
            self.store.put_result(job.job_id, key_hex, text)
        rec = self.store.create_dispute(state.dispute_id, job.job_id,
                                        canonical_json(opening).decode())
        self.wake()
        return OpenedDispute(rec.dispute_id, rec.job_id, rec.status)

    def close(self) -> None:
        """Close the channels to providers (at shutdown: no gRPC threads left running)."""
        with self._peers_lock:
            for peer in self._peers.values():
                close = getattr(peer, "close", None)
                if close is not None:
                    close()
            self._peers.clear()

    # -- working ------------------------------------------------------------------------
    def wake(self) -> None:
        """Wake idle workers now (a dispute was opened, or the process is stopping)."""
        self._wake.set()

    def work_once(self, dispute_id: str | None = None) -> bool:
        """Claim one active dispute (or the given one) and drive it; False if none was free."""
        with self._claim_lock:
            rec = self.store.claim(self.owner, self.lease_s, dispute_id,
                                   exclude=frozenset(self._active))
            if rec is None:
                return False
            self._active.add(rec.dispute_id)
        try:
            self._drive(rec)
        except LeaseLost:
            log.warning("dispute %s taken over by another arbiter", rec.dispute_id)
        except (ArbiterError, VerdeError, ProofError, ValueError) as exc:
            # Not a provider's fault (those are events): the dispute cannot proceed.
            log.error("dispute %s failed: %s", rec.dispute_id, exc)
            self._fail(rec.dispute_id, f"{type(exc).__name__}: {exc}")
        finally:
            with self._claim_lock:
                self._active.discard(rec.dispute_id)
        return True

    def run(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Worker loop: keep claiming and driving disputes until ``stop`` is set."""
        while not stop.is_set():
            try:
                busy = self.work_once()
            except Exception:  # a worker thread must survive anything (storage outages...)
                log.exception("arbiter worker error")
                busy = False
            if not busy and not stop.is_set():
                self._wake.wait(poll_s)
                self._wake.clear()

    def load_state(self, rec: DisputeRecord) -> tuple[DisputeState, dict[str, str]]:
        """Rebuild a dispute's state from its opening and committed events."""
        opening = json.loads(rec.state_json)
        events = [json.loads(e.payload_json) for e in self.store.events(rec.dispute_id)
                  if e.seq > 0 and e.kind in ("answer", "timeout")]
        data = dict(opening["state"])
        data["transcript"] = events
        return DisputeState.from_json(data), dict(opening["addresses"])

    def _peer(self, address: str) -> ProviderPeer:
        with self._peers_lock:
            if address not in self._peers:
                self._peers[address] = self.peer_factory(address)
            return self._peers[address]

    def _fail(self, dispute_id: str, error: str) -> None:
        rec = self.store.dispute(dispute_id)
        with contextlib.suppress(LeaseLost):  # someone else already finished it
            self.store.finish(rec, self.owner, verdict_json="{}", certificate_json=None,
                              winners=[], losers=[], status="failed", error=error)

    def _drive(self, rec: DisputeRecord) -> None:
        with self._compute_lock:
            state, addresses = self.load_state(rec)
        while not state.done:
            for query in state.next_queries():
                if state.done:
                    break
                try:
                    answer = self._peer(addresses[query.party]).answer(query)
                    event = answer_event(query, answer)
                except PeerError:
                    event = {"type": "timeout", "party": query.party, "round": query.round}
                with self._compute_lock:
                    state.apply(event)
                rec = self.store.advance(rec, self.owner, lease_s=self.lease_s,
                                         phase=state.phase, rounds=state.rounds,
                                         event_kind=event["type"],
                                         event_payload_json=dump_json(event))
                if self.on_event is not None:
                    self.on_event(rec.dispute_id, state)
        self._finish(rec, state)

    def _finish(self, rec: DisputeRecord, state: DisputeState) -> None:
        verdict = state.verdict
        if verdict is None:  # pragma: no cover - _drive only returns when done
            raise ArbiterError(f"dispute {rec.dispute_id} finished without a verdict")
        keys = {p: state.results[p].signer.hex() for p in ("a", "b")}
        with self._compute_lock:
            certificate = self.certify(state, self.key) if self.certify else None
        self.store.finish(
            rec, self.owner,
            verdict_json=dump_json({**verdict.to_json(), "keys": keys}),
            certificate_json=dump_json(certificate) if certificate else None,
            winners=[keys[verdict.winner]] if verdict.winner else [],
            losers=[keys[p] for p in verdict.losers])
