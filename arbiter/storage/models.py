"""Tables. Payload columns hold canonical JSON text produced by verde/proofs."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ProviderRow(Base):
    """A provider known by its Ed25519 public key, with its dispute record."""

    __tablename__ = "providers"
    public_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str | None] = mapped_column(String(255))
    disputes_won: Mapped[int] = mapped_column(Integer, default=0)
    disputes_lost: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobRow(Base):
    """A job spec, content-addressed by its id (the digest of its canonical form)."""

    __tablename__ = "jobs"
    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ResultRow(Base):
    """A provider's signed result for a job (one per provider and job)."""

    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("job_id", "provider_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.job_id"), index=True)
    provider_key: Mapped[str] = mapped_column(String(64))
    signed_result_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DisputeRow(Base):
    """A dispute (its opening; the events are its transcript) with a lease for several arbiters.

    ``version`` implements optimistic concurrency: a state write succeeds only if nobody else
    wrote since it was read, and only by the arbiter holding the lease (``owner`` until
    ``lease_until``). A crashed arbiter's lease expires and another process resumes the dispute
    from the last committed state.
    """

    __tablename__ = "disputes"
    # The claim query of every arbiter worker: active disputes whose lease is free or expired.
    __table_args__ = (Index("ix_disputes_status_lease", "status", "lease_until"),)
    dispute_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.job_id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    # The opening of the dispute (spec, signed results, parties' addresses); the state is this
    # opening plus the events in dispute_events, replayed in order.
    state_json: Mapped[str] = mapped_column(Text)
    phase: Mapped[str] = mapped_column(String(32), default="open")
    rounds: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float | None] = mapped_column(Float)  # unix time; naive-tz safe
    verdict_json: Mapped[str | None] = mapped_column(Text)
    certificate_json: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # Who first asked for the dispute (a client key, or anonymous@HOST); NULL before 0003.
    opened_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DisputeEventRow(Base):
    """Append-only log of every event applied to a dispute (its transcript, in order)."""

    __tablename__ = "dispute_events"
    __table_args__ = (UniqueConstraint("dispute_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dispute_id: Mapped[str] = mapped_column(ForeignKey("disputes.dispute_id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    payload_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The arbiter process (lease owner) that committed the event: which process did what when
    # disputes are handed over. NULL for the opening and for events before revision 0002.
    owner: Mapped[str | None] = mapped_column(String(64))
