"""The arbiter's dispute engine: verde's state machine, made durable and shareable.

A dispute is stored as its opening (spec, both signed results, the parties' endpoint records
and address hints, see :mod:`arbiter.vouched`) plus
its event log. Working on it means: claim its lease, rebuild the state by replaying the log
(every check runs again), then loop — ask the parties the current queries, apply each answer
or timeout, and **commit the event before asking the next question**. A killed arbiter
therefore loses at most the answers it had not committed; when it (or any other arbiter
process on the same database) claims the dispute again, it replays the log and re-asks the
same queries, which honest providers answer with the same signed bytes (Ed25519 signatures
are deterministic; a different answer is an equivocation).

Draining (SIGTERM): the engine stops claiming, lets every dispute it drives finish the round in
flight, commits it, and releases the lease at once, so another arbiter on the same database
takes the dispute over without waiting for the lease to expire. Every state change is reported
to the engine's observers (:mod:`arbiter.observers`: logs and metrics).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arbiter.codec import dump_json, parse_json
from arbiter.committee import CommitteeSeat
from arbiter.errors import ArbiterError, ArbiterInputError, LeaseLost, NotFound, OtherProtocol
from arbiter.logs import log_event
from arbiter.observers import DisputeObserver, notify
from arbiter.state_log import DisputeLog
from arbiter.storage.store import DisputeRecord, Store
from arbiter.vouched import (
    PartyReach,
    Unreachable,
    VouchingPeer,
    check_hint,
    merge_opening,
    opening_json,
)
from proofs import ProofError, SignedMessage, SigningKey, canonical_json, verify_message
from verde.errors import VerdeError
from verde.protocol.dispute.driver import answer_event, silence_event
from verde.protocol.dispute.state import DisputeState
from verde.protocol.dispute.witness import DisputeStalled
from verde.protocol.jobs.spec import SPEC_VERSION, JobSpec
from verde.protocol.peers.endpoints import EndpointRecord, InvalidEndpoint
from verde.protocol.peers.errors import PeerError
from verde.protocol.peers.messages import Query
from verde.protocol.peers.result import check_result

log = logging.getLogger("verde.arbiter")

PeerFactory = Callable[[str], VouchingPeer]
Certifier = Callable[[DisputeState, SigningKey], dict[str, Any]]


def check_timing(deadline_s: float, lease_s: float) -> None:
    """A provider's deadline must fit in the lease, or a slow answer would cost the lease."""
    if not 0 < deadline_s < lease_s:
        raise ArbiterInputError(f"need 0 < deadline ({deadline_s:g}s) < lease ({lease_s:g}s): "
                                "an answer must arrive before the arbiter's lease on the "
                                "dispute expires")


def check_committee_timing(deadline_s: float, lease_s: float) -> None:
    """Under a committee a silence costs two deadlines (the arbiter's own wait, then the
    witnesses', who ask at the same time), and both must fit in the lease."""
    if not 2 * deadline_s < lease_s:
        raise ArbiterInputError(f"under a committee a silence costs two deadlines (the "
                                f"arbiter's, then the witnesses'): need 2 x deadline "
                                f"({deadline_s:g}s) < lease ({lease_s:g}s)")


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
                 observers: Sequence[DisputeObserver] | None = None,
                 committee: CommitteeSeat | None = None) -> None:
        check_timing(deadline_s, lease_s)
        if committee is not None:
            check_committee_timing(deadline_s, lease_s)
        self.store = store
        self.key = key
        self.peer_factory = peer_factory
        self.owner = owner or key.public_key.hex()[:32]
        self.lease_s = lease_s
        self.deadline_s = deadline_s
        self.certify = certify
        #: This arbiter's seat on a committee: its disputes are run and co-signed by it.
        self.committee = committee
        # Disputes whose silence or co-signatures the committee could not establish yet:
        # retried after a pause (dispute id -> monotonic time), nobody loses meanwhile.
        self._stalled: dict[str, float] = {}
        #: Told of every state change; by default the log lines of :mod:`arbiter.state_log`.
        self.observers: tuple[DisputeObserver, ...] = (
            tuple(observers) if observers is not None else (DisputeLog(),))
        self._peers: dict[str, VouchingPeer] = {}
        self._peers_lock = threading.Lock()
        self._active: set[str] = set()
        self._claim_lock = threading.Lock()
        # Rebuilding and checking a state runs the arbiter's shape-only replay and its one
        # recomputation: CPU work on shared torch modules, done one dispute at a time; the
        # waits for providers' answers run concurrently.
        self._compute_lock = threading.Lock()
        if committee is not None:
            committee.compute_lock = self._compute_lock
        # Set when this process opens a dispute, so an idle worker starts at once instead of
        # at its next poll (other processes' disputes are still found by polling).
        self._wake = threading.Event()
        self._draining = threading.Event()

    # -- opening ------------------------------------------------------------------------
    def open_dispute(self, spec: Mapping[str, Any],
                     entries: Sequence[tuple[str, ...]]) -> OpenedDispute:
        """Open a dispute between two (address hint, signed result JSON[, endpoint record
        JSON]) entries.

        The address is only a hint (see :mod:`arbiter.vouched`): the arbiter queries each
        party where its own signed endpoint record says. Opening a dispute that exists merges
        the new records and hints into it, and makes it active again if it had ended
        ``unreachable``: whoever opened it first, the outcome is the same.
        """
        if len(entries) != 2:
            raise ArbiterInputError(
                f"a dispute is between exactly two providers, got {len(entries)}")
        job = JobSpec.from_mapping(spec)
        results, records, hints = [], {}, {}
        for party, entry in zip(("a", "b"), entries, strict=True):
            if len(entry) not in (2, 3):
                raise ArbiterInputError("a dispute entry is (address, signed result JSON"
                                        "[, endpoint record JSON])")
            address, text = entry[0], entry[1]
            try:
                hints[party] = check_hint(address, f"address of provider {party}")
            except InvalidEndpoint as exc:
                raise ArbiterInputError(str(exc)) from None
            message = SignedMessage.from_json(parse_json(text, f"result of {address}"))
            # Check before storing anything: a forged result must neither be recorded nor
            # cost the provider it names a dispute.
            verify_message(message)
            check_result(message, job.job_id, job.steps)
            results.append(message)
            if len(entry) == 3 and entry[2]:
                try:
                    records[party] = EndpointRecord.from_json(parse_json(
                        entry[2], f"endpoint record of provider {party}")).check(message.signer)
                except InvalidEndpoint as exc:
                    raise ArbiterInputError(f"provider {party}: {exc}") from None
        state = DisputeState(job, results[0], results[1], deadline_s=self.deadline_s,
                             committee=self.committee.committee if self.committee else None)
        keys = {p: r.signer.hex() for p, r in zip(("a", "b"), results, strict=True)}
        opening = merge_opening({"state": state.to_json(), "addresses": dict(hints)}, keys,
                                records, hints)
        self.store.put_job(job.job_id, canonical_json(job.to_dict()).decode())
        for party, result in zip(("a", "b"), results, strict=True):
            key_hex = result.signer.hex()
            vouched = records.get(party)
            self.store.upsert_provider(key_hex, vouched.address if vouched else None)
            self.store.put_result(job.job_id, key_hex, dump_json(result.to_json()))
        try:
            self.store.dispute(state.dispute_id)
            existed = True
        except NotFound:
            existed = False
        rec = self.store.create_dispute(state.dispute_id, job.job_id,
                                        canonical_json(opening).decode())
        if not existed and rec.state_json == canonical_json(opening).decode():
            notify(self.observers, "opened", rec.dispute_id, rec.job_id)
        else:  # it existed: merge ours in, and resume it if it could not reach a party
            self._merge_into(rec.dispute_id, keys, records, hints)
            self.store.reopen_unreachable(rec.dispute_id)
            rec = self.store.dispute(rec.dispute_id)
        self.wake()
        return OpenedDispute(rec.dispute_id, rec.job_id, rec.status)

    def _merge_into(self, dispute_id: str, keys: Mapping[str, str],
                    records: Mapping[str, EndpointRecord | None],
                    hints: Mapping[str, str]) -> None:
        """Merge records and hints into a stored opening (compare and set, retried)."""
        for _ in range(20):
            seen = self.store.dispute(dispute_id).state_json
            merged = canonical_json(merge_opening(opening_json(seen), keys, records,
                                                  hints)).decode()
            if merged == seen or self.store.update_opening(dispute_id, seen, merged):
                return
        raise ArbiterError(f"dispute {dispute_id}: its opening kept changing while endpoint "
                           "records were added")

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

    def drain(self) -> None:
        """Stop claiming; hand every driven dispute over once its round in flight is done."""
        self._draining.set()
        self.wake()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    @property
    def active(self) -> int:
        """Disputes this process is driving now."""
        with self._claim_lock:
            return len(self._active)

    def work_once(self, dispute_id: str | None = None) -> bool:
        """Claim one active dispute (or the given one) and drive it; False if none was free."""
        with self._claim_lock:
            if self._draining.is_set():
                return False
            now = time.monotonic()
            self._stalled = {d: t for d, t in self._stalled.items() if t > now}
            rec = self.store.claim(self.owner, self.lease_s, dispute_id,
                                   exclude=frozenset(self._active | set(self._stalled)))
            if rec is None:
                return False
            self._active.add(rec.dispute_id)
        notify(self.observers, "claimed", rec.dispute_id, rec.job_id, rec.phase, rec.rounds)
        try:
            self._drive(rec)
        except LeaseLost:
            notify(self.observers, "lease_lost", rec.dispute_id)
        except DisputeStalled as exc:  # nobody loses for what could not be established
            log_event(log, logging.WARNING, "dispute.stalled",
                      f"dispute waits for the committee: {exc}", dispute_id=rec.dispute_id)
            with self._claim_lock:
                self._stalled[rec.dispute_id] = time.monotonic() + 2 * self.deadline_s
        except (ArbiterError, VerdeError, ProofError, ValueError) as exc:
            # Not a provider's fault (those are events): the dispute cannot proceed.
            self._fail(rec.dispute_id, f"{type(exc).__name__}: {exc}")
        finally:
            with self._claim_lock:
                self._active.discard(rec.dispute_id)
        return True

    def run(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Worker loop: keep claiming and driving disputes until ``stop`` is set."""
        while not stop.is_set() and not self._draining.is_set():
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
        version = opening["state"]["spec"].get("version")
        if version != SPEC_VERSION:
            raise OtherProtocol(
                f"dispute opened under protocol version {version}; this arbiter speaks "
                f"version {SPEC_VERSION} and cannot resume it (job ids and commitments "
                "differ): it ends without a verdict and nobody loses; open it again with "
                "parties of this release")
        events = [json.loads(e.payload_json) for e in self.store.events(rec.dispute_id)
                  if e.seq > 0 and e.kind in ("answer", "timeout")]
        data = dict(opening["state"])
        data["transcript"] = events
        return DisputeState.from_json(data), dict(opening.get("addresses", {}))

    def _peer(self, address: str) -> VouchingPeer:
        with self._peers_lock:
            if address not in self._peers:
                self._peers[address] = self.peer_factory(address)
            return self._peers[address]

    def _fail(self, dispute_id: str, error: str) -> None:
        rec = self.store.dispute(dispute_id)
        with contextlib.suppress(LeaseLost):  # someone else already finished it
            self.store.finish(rec, self.owner, verdict_json="{}", certificate_json=None,
                              winners=[], losers=[], status="failed", error=error)
            notify(self.observers, "finished", dispute_id, "failed", None, error)

    def _drive(self, rec: DisputeRecord) -> None:
        with self._compute_lock:
            state, _ = self.load_state(rec)
        keys = {p: state.results[p].signer.hex() for p in ("a", "b")}
        reach = PartyReach(
            keys, self._peer, lambda: opening_json(self.store.dispute(rec.dispute_id).state_json),
            lambda records: self._merge_into(rec.dispute_id, keys, records, {}),
            patience_s=self.deadline_s)
        while not state.done:
            if self._draining.is_set():
                self._release(rec)
                return
            phase, round_, started = state.phase, state.round, time.monotonic()
            for query in state.next_queries():
                if state.done:
                    break
                try:
                    event = self._ask(reach, state, query)
                except Unreachable as exc:
                    self._end_unreachable(rec, str(exc))
                    return
                before = state.phase
                with self._compute_lock:
                    state.apply(event)
                rec = self.store.advance(rec, self.owner, lease_s=self.lease_s,
                                         phase=state.phase, rounds=state.rounds,
                                         event_kind=event["type"],
                                         event_payload_json=dump_json(event))
                notify(self.observers, "advanced", rec.dispute_id, event, before, state.phase,
                       state.rounds)
            notify(self.observers, "round_done", rec.dispute_id, phase, round_,
                   time.monotonic() - started)
        self._finish(rec, state)

    def _ask(self, reach: PartyReach, state: DisputeState, query: Query) -> dict[str, Any]:
        """The party's answer event, or its timeout at the address it vouched for (only if it
        still proves its key there: otherwise :class:`Unreachable`)."""
        peer, _ = reach.contact(query.party)
        try:
            return answer_event(query, peer.answer(query))
        except PeerError:
            record = reach.confirm_silence(query.party)
            # Under a committee the members witness the silence themselves at the vouched
            # address (an answer one of them gets is applied instead).
            witnesses = (self._seat_of(state).witnesses(self._peer)
                         if state.committee is not None else ())
            return silence_event(state, query, {query.party: record}, witnesses)

    def _end_unreachable(self, rec: DisputeRecord, error: str) -> None:
        """No verdict: a party could not be reached where it vouched. Opening the dispute
        again (with a current endpoint record) resumes it."""
        with contextlib.suppress(LeaseLost):
            self.store.finish(rec, self.owner, verdict_json="{}", certificate_json=None,
                              winners=[], losers=[], status="unreachable", error=error)
            notify(self.observers, "finished", rec.dispute_id, "unreachable", None, error)

    def _seat_of(self, state: DisputeState) -> CommitteeSeat:
        """This arbiter's seat on the committee of ``state`` (a dispute opened under another
        committee, or resumed by an arbiter on none, waits for one of its members)."""
        if self.committee is None or not self.committee.sits_on(state.committee):
            raise DisputeStalled(f"dispute {state.dispute_id} runs under a committee this "
                                 "arbiter does not sit on")
        return self.committee

    def _release(self, rec: DisputeRecord) -> None:
        with contextlib.suppress(LeaseLost):  # already taken over: nothing to hand back
            self.store.release(rec, self.owner)
            notify(self.observers, "released", rec.dispute_id, rec.phase, rec.rounds)

    def _finish(self, rec: DisputeRecord, state: DisputeState) -> None:
        verdict = state.verdict
        if verdict is None:  # pragma: no cover - _drive only returns when done
            raise ArbiterError(f"dispute {rec.dispute_id} finished without a verdict")
        keys = {p: state.results[p].signer.hex() for p in ("a", "b")}
        with self._compute_lock:
            certificate = self.certify(state, self.key) if self.certify else None
        if certificate is not None and state.committee is not None:
            # Not under the compute lock: the members asked to co-sign may be asking this
            # arbiter to co-sign their own disputes at the same time.
            certificate = self._seat_of(state).cosigned(certificate)
        doc = {**verdict.to_json(), "keys": keys}
        self.store.finish(
            rec, self.owner,
            verdict_json=dump_json(doc),
            certificate_json=dump_json(certificate) if certificate else None,
            winners=[keys[verdict.winner]] if verdict.winner else [],
            losers=[keys[p] for p in verdict.losers])
        notify(self.observers, "finished", rec.dispute_id, "decided", doc, None)

