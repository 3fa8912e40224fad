"""Alembic environment: runs migrations on the engine handed over by arbiter.storage.db."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from arbiter.storage.models import Base

#: Arbitrary constant naming verde's migration lock on PostgreSQL.
MIGRATION_LOCK = 720101

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        # Several arbiter processes may start at once on a fresh database: one migrates, the
        # others wait for it and then find the schema at head.
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    context.run_migrations()
