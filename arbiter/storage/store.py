"""The arbiter's persistence operations, each one transaction.

Concurrency model (several arbiter processes on one PostgreSQL database, or one on SQLite):
a dispute is worked on only by the process holding its lease. Claiming and every state write
are single conditional UPDATEs (``WHERE version = :seen AND owner = :me``), so two processes can
never both advance a dispute, on any SQL database, without relying on ``SELECT ... FOR UPDATE``.
A killed process stops renewing its lease; after ``lease_s`` another process (or the restarted
one) claims the dispute and resumes from the last committed state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from arbiter.errors import ConflictingJob, ConflictingResult, LeaseLost, NotFound, StorageError
from arbiter.storage.db import Database
from arbiter.storage.models import (
    DisputeEventRow,
    DisputeRow,
    JobRow,
    ProviderRow,
    ResultRow,
    utcnow,
)

ACTIVE = ("open", "running")


@dataclass(frozen=True)
class DisputeRecord:
    """A snapshot of one dispute row."""

    dispute_id: str
    job_id: str
    status: str
    state_json: str
    phase: str
    rounds: int
    version: int
    owner: str | None
    verdict_json: str | None
    certificate_json: str | None
    error: str | None
    opened_by: str | None = None

    @classmethod
    def of(cls, row: DisputeRow) -> DisputeRecord:
        return cls(row.dispute_id, row.job_id, row.status, row.state_json, row.phase, row.rounds,
                   row.version, row.owner, row.verdict_json, row.certificate_json, row.error,
                   row.opened_by)


@dataclass(frozen=True)
class EventRecord:
    seq: int
    kind: str
    payload_json: str


class Store:
    """Jobs, results, disputes and provider records on one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- jobs and results -------------------------------------------------------------
    def put_job(self, job_id: str, spec_json: str) -> None:
        with self.db.sessions.begin() as s:
            _insert_ignoring_duplicates(s, JobRow, job_id=job_id, spec_json=spec_json,
                                        created_at=utcnow())
            if s.get(JobRow, job_id).spec_json != spec_json:  # type: ignore[union-attr]
                raise ConflictingJob(f"job {job_id} already stored with a different spec")

    def job_spec(self, job_id: str) -> str:
        with self.db.sessions() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"unknown job {job_id}")
            return row.spec_json

    def list_jobs(self, limit: int = 100) -> list[tuple[str, str]]:
        with self.db.sessions() as s:
            rows = s.scalars(select(JobRow).order_by(JobRow.created_at.desc()).limit(limit))
            return [(r.job_id, r.spec_json) for r in rows]

    def put_result(self, job_id: str, provider_key: str, signed_json: str) -> None:
        with self.db.sessions.begin() as s:
            _insert_ignoring_duplicates(s, ResultRow, job_id=job_id, provider_key=provider_key,
                                        signed_result_json=signed_json, created_at=utcnow())
            existing = s.scalar(select(ResultRow).where(ResultRow.job_id == job_id,
                                                        ResultRow.provider_key == provider_key))
            if existing is not None and existing.signed_result_json != signed_json and (
                    _parsed(existing.signed_result_json) != _parsed(signed_json)):
                raise ConflictingResult(
                    f"provider {provider_key[:16]} already has a different result for job {job_id}")

    def results(self, job_id: str) -> list[tuple[str, str]]:
        with self.db.sessions() as s:
            rows = s.scalars(select(ResultRow).where(ResultRow.job_id == job_id)
                             .order_by(ResultRow.id))
            return [(r.provider_key, r.signed_result_json) for r in rows]

    # -- providers --------------------------------------------------------------------
    def upsert_provider(self, public_key: str, address: str | None = None) -> None:
        with self.db.sessions.begin() as s:
            _insert_ignoring_duplicates(s, ProviderRow, public_key=public_key, address=address,
                                        disputes_won=0, disputes_lost=0, created_at=utcnow())
            if address:
                s.execute(update(ProviderRow).where(ProviderRow.public_key == public_key)
                          .values(address=address))

    def provider_record(self, public_key: str) -> tuple[int, int]:
        with self.db.sessions() as s:
            row = s.get(ProviderRow, public_key)
            if row is None:
                raise NotFound(f"unknown provider {public_key[:16]}")
            return row.disputes_won, row.disputes_lost

    # -- disputes ---------------------------------------------------------------------
    def create_dispute(self, dispute_id: str, job_id: str, state_json: str) -> DisputeRecord:
        """Insert a dispute; creating the same dispute twice returns the stored one."""
        try:
            with self.db.sessions.begin() as s:
                if s.get(DisputeRow, dispute_id) is not None:
                    return DisputeRecord.of(s.get(DisputeRow, dispute_id))
                s.add(DisputeRow(dispute_id=dispute_id, job_id=job_id, status="open",
                                 state_json=state_json, phase="open", rounds=0, version=0))
                s.flush()
                s.add(DisputeEventRow(dispute_id=dispute_id, seq=0, kind="opened",
                                      payload_json=state_json))
        except IntegrityError as exc:
            # A concurrent process created it first; anything else is a real failure.
            try:
                return self.dispute(dispute_id)
            except NotFound:
                raise StorageError(f"cannot create dispute {dispute_id}: {exc.orig}") from None
        return self.dispute(dispute_id)

    def update_opening(self, dispute_id: str, seen_json: str, new_json: str) -> bool:
        """Replace a dispute's opening if it is still ``seen_json`` (compare and set).

        The lease fence (``version``) is left alone: adding vouched endpoint records to an
        opening never conflicts with the arbiter driving the dispute.
        """
        with self.db.sessions.begin() as s:
            res = s.execute(update(DisputeRow).where(DisputeRow.dispute_id == dispute_id,
                                                     DisputeRow.state_json == seen_json)
                            .values(state_json=new_json))
            return bool(res.rowcount == 1)

    def reopen_unreachable(self, dispute_id: str) -> bool:
        """Make a dispute that ended ``unreachable`` active again (new records may reach the
        party now); False if it is in any other status."""
        with self.db.sessions.begin() as s:
            res = s.execute(update(DisputeRow).where(DisputeRow.dispute_id == dispute_id,
                                                     DisputeRow.status == "unreachable")
                            .values(status="open", phase="open", error=None, owner=None,
                                    lease_until=None, version=DisputeRow.version + 1,
                                    updated_at=utcnow()))
            return bool(res.rowcount == 1)

    def set_opener(self, dispute_id: str, client: str) -> None:
        """Record who asked for the dispute, unless someone already did (the first opener
        stays; the dispute itself is the same whoever asks again)."""
        with self.db.sessions.begin() as s:
            s.execute(update(DisputeRow).where(DisputeRow.dispute_id == dispute_id,
                                               DisputeRow.opened_by.is_(None))
                      .values(opened_by=client[:200]))

    def dispute(self, dispute_id: str) -> DisputeRecord:
        with self.db.sessions() as s:
            row = s.get(DisputeRow, dispute_id)
            if row is None:
                raise NotFound(f"unknown dispute {dispute_id}")
            return DisputeRecord.of(row)

    def list_disputes(self, status: str | None = None, limit: int = 100) -> list[DisputeRecord]:
        with self.db.sessions() as s:
            q = select(DisputeRow).order_by(DisputeRow.created_at.desc()).limit(limit)
            if status:
                q = q.where(DisputeRow.status == status)
            return [DisputeRecord.of(r) for r in s.scalars(q)]

    def events(self, dispute_id: str) -> list[EventRecord]:
        with self.db.sessions() as s:
            rows = s.scalars(select(DisputeEventRow).where(DisputeEventRow.dispute_id ==
                                                           dispute_id)
                             .order_by(DisputeEventRow.seq))
            return [EventRecord(r.seq, r.kind, r.payload_json) for r in rows]

    def claim(self, owner: str, lease_s: float, dispute_id: str | None = None, *,
              exclude: frozenset[str] = frozenset()) -> DisputeRecord | None:
        """Take the lease of an active dispute whose lease is free or expired (or ours).

        ``exclude`` lists disputes this process is already driving, so its worker threads
        (which share one owner id, so a restarted process resumes its own disputes at once)
        never drive the same dispute twice.
        """
        now = time.time()
        with self.db.sessions() as s:
            q = select(DisputeRow.dispute_id, DisputeRow.version).where(
                DisputeRow.status.in_(ACTIVE),
                or_(DisputeRow.owner.is_(None), DisputeRow.lease_until < now,
                    DisputeRow.owner == owner))
            if dispute_id is not None:
                q = q.where(DisputeRow.dispute_id == dispute_id)
            if exclude:
                q = q.where(DisputeRow.dispute_id.not_in(sorted(exclude)))
            candidates: Sequence[tuple[str, int]] = [
                (r[0], r[1]) for r in s.execute(q.order_by(DisputeRow.created_at).limit(20))]
        for did, version in candidates:
            with self.db.sessions.begin() as s:
                res = s.execute(
                    update(DisputeRow)
                    .where(DisputeRow.dispute_id == did, DisputeRow.version == version,
                           DisputeRow.status.in_(ACTIVE),
                           or_(DisputeRow.owner.is_(None), DisputeRow.lease_until < now,
                               DisputeRow.owner == owner))
                    .values(owner=owner, lease_until=now + lease_s, status="running",
                            version=DisputeRow.version + 1, updated_at=utcnow()))
                won = res.rowcount == 1
            if won:
                return self.dispute(did)
        return None

    def advance(self, record: DisputeRecord, owner: str, *, lease_s: float, phase: str,
                rounds: int, event_kind: str, event_payload_json: str) -> DisputeRecord:
        """Commit one event (and the phase it led to) atomically; LeaseLost if fenced out."""
        with self.db.sessions.begin() as s:
            _fenced_update(s, record, owner, phase=phase, rounds=rounds,
                           lease_until=time.time() + lease_s)
            seq = (s.scalar(select(func.max(DisputeEventRow.seq))
                            .where(DisputeEventRow.dispute_id == record.dispute_id)) or 0) + 1
            s.add(DisputeEventRow(dispute_id=record.dispute_id, seq=seq, kind=event_kind,
                                  payload_json=event_payload_json, owner=owner))
        return self.dispute(record.dispute_id)

    def release(self, record: DisputeRecord, owner: str) -> DisputeRecord:
        """Give the lease back now (a draining arbiter): any process may claim it at once.

        The dispute stays ``running`` with its committed events; LeaseLost if fenced out.
        """
        with self.db.sessions.begin() as s:
            _fenced_update(s, record, owner, owner=None, lease_until=None)
        return self.dispute(record.dispute_id)

    def dispute_counts(self) -> dict[str, int]:
        """How many disputes the database holds in each status (for dashboards)."""
        with self.db.sessions() as s:
            rows = s.execute(select(DisputeRow.status, func.count()).group_by(DisputeRow.status))
            return {str(status): int(n) for status, n in rows}

    def waiting_count(self) -> int:
        """Active disputes that no arbiter holds (lease free or expired): the queue depth."""
        now = time.time()
        with self.db.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(DisputeRow).where(
                DisputeRow.status.in_(ACTIVE),
                or_(DisputeRow.owner.is_(None), DisputeRow.lease_until < now))) or 0)

    def finish(self, record: DisputeRecord, owner: str, *, verdict_json: str,
               certificate_json: str | None, winners: Sequence[str], losers: Sequence[str],
               status: str = "decided", error: str | None = None) -> DisputeRecord:
        """Record the verdict and update provider records in the same transaction."""
        with self.db.sessions.begin() as s:
            _fenced_update(s, record, owner, status=status, phase="done",
                           verdict_json=verdict_json, certificate_json=certificate_json,
                           error=error, owner=None, lease_until=None)
            # Atomic increments: two arbiter processes finishing disputes of the same provider
            # at once must not lose an update (no read-modify-write in Python).
            for key in winners:
                _bump(s, key, won=1)
            for key in losers:
                _bump(s, key, lost=1)
            seq = (s.scalar(select(func.max(DisputeEventRow.seq))
                            .where(DisputeEventRow.dispute_id == record.dispute_id)) or 0) + 1
            s.add(DisputeEventRow(dispute_id=record.dispute_id, seq=seq, kind=status,
                                  payload_json=verdict_json, owner=owner))
        return self.dispute(record.dispute_id)


def _parsed(text: str) -> object:
    """JSON text as a value, so the same result written in another key order or spacing
    (an earlier release stored the opener's text verbatim) is not a conflict."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _fenced_update(s: Session, record: DisputeRecord, holder: str, **values: object) -> None:
    """UPDATE the dispute only if ``holder`` holds its lease and nobody wrote since ``record``
    was read (version bumped, updated_at set); LeaseLost otherwise. ``values`` may set
    ``owner`` (None: the lease is given back)."""
    res = s.execute(
        update(DisputeRow)
        .where(DisputeRow.dispute_id == record.dispute_id,
               DisputeRow.version == record.version, DisputeRow.owner == holder)
        .values(**values, version=DisputeRow.version + 1, updated_at=utcnow()))
    if res.rowcount != 1:
        raise LeaseLost(f"dispute {record.dispute_id} was taken over by another arbiter")


def _insert_ignoring_duplicates(s: Session, model: type, **values: object) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: concurrent first writers of a row both succeed."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise StorageError(f"unsupported database dialect {dialect!r}")
    s.execute(dialect_insert(model).values(**values).on_conflict_do_nothing())


def _bump(s: Session, key: str, *, won: int = 0, lost: int = 0) -> None:
    res = s.execute(update(ProviderRow).where(ProviderRow.public_key == key).values(
        disputes_won=ProviderRow.disputes_won + won,
        disputes_lost=ProviderRow.disputes_lost + lost))
    if res.rowcount == 0:  # providers are recorded when a dispute opens; this is a fallback
        s.add(ProviderRow(public_key=key, disputes_won=won, disputes_lost=lost))
