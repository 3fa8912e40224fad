"""Opening the database: engine, per-dialect settings, and Alembic migrations to head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from arbiter.errors import StorageError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
DEFAULT_URL = "sqlite:///verde-arbiter.db"


@dataclass
class Database:
    """An engine and its session factory, migrated to the newest schema."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers proceed while one process writes; busy_timeout makes concurrent
    # arbiter processes wait for the write lock instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def open_database(url: str = DEFAULT_URL, *, migrate: bool = True) -> Database:
    """Connect to ``url`` (SQLAlchemy URL) and migrate it to head; one clear error if not."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"database URL {url!r} is not a valid SQLAlchemy URL: {exc}") from None
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 10, "check_same_thread": False}
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise StorageError(f"cannot use database {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        if migrate:
            command.upgrade(alembic_config(engine), "head")
        else:
            with engine.connect():
                pass
    except OperationalError as exc:
        engine.dispose()
        raise StorageError(f"cannot open database {url!r}: {exc.orig}") from None
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StorageError(f"cannot migrate database {url!r}: {exc}") from None
    return Database(url, engine, sessionmaker(engine, expire_on_commit=False))
