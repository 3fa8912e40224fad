"""Durable state of the services: SQLAlchemy 2.x over SQLite (default) or PostgreSQL.

Protocol payloads (job specs, signed results, dispute states, certificates) are stored as the
canonical JSON that verde produces, so the schema does not change when the protocol grows.
Every dispute state change is committed before it is acted on (DESIGN.md section 6).
"""

from arbiter.storage.db import (
    Database,
    SchemaOutdated,
    SchemaUnknown,
    migrate_database,
    open_database,
)
from arbiter.storage.models import Base, DisputeEventRow, DisputeRow, JobRow, ProviderRow, ResultRow
from arbiter.storage.store import DisputeRecord, Store

__all__ = [
    "Base",
    "Database",
    "DisputeEventRow",
    "DisputeRecord",
    "DisputeRow",
    "JobRow",
    "ProviderRow",
    "ResultRow",
    "SchemaOutdated",
    "SchemaUnknown",
    "Store",
    "migrate_database",
    "open_database",
]
