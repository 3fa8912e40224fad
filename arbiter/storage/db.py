"""Opening the database: engine, per-dialect settings, and the schema's Alembic revision.

A service never changes a schema behind its operator's back: ``verde arbiter serve`` creates
the schema of an empty database (a fresh install) but refuses one at an older revision and
asks for ``verde arbiter migrate``, which applies the migrations explicitly (and which several
processes may run at once on PostgreSQL: env.py takes an advisory lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from arbiter.errors import StorageError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
DEFAULT_URL = "sqlite:///verde-arbiter.db"

#: ``upgrade``: migrate to the newest revision (library use, tests, the demo);
#: ``require``: create an empty database's schema, refuse any other revision than the newest;
#: ``ignore``: only connect.
SchemaPolicy = Literal["upgrade", "require", "ignore"]


class SchemaOutdated(StorageError):
    """The database's schema is older than this release's: ``verde arbiter migrate`` it."""


class SchemaUnknown(StorageError):
    """The database holds a schema this release does not know (a newer release's, or none)."""


@dataclass
class Database:
    """An engine and its session factory, migrated to the newest schema."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def close(self) -> None:
        self.engine.dispose()


def safe_url(url: str) -> str:
    """A database URL fit for logs and error messages: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a database URL>"


def check_url(url: str) -> None:
    """Raise StorageError if ``url`` is not a SQLAlchemy URL (its form only; nothing connects)."""
    try:
        make_url(url)
    except ArgumentError:
        raise StorageError(f"database URL {safe_url(url)!r} is not a valid SQLAlchemy URL "
                           "(expected sqlite:///FILE or postgresql://USER@HOST/DB)") from None


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


def head_revision() -> str:
    """The newest schema revision this release knows."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise StorageError("no schema migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database; None for an empty database.

    A database with tables but no revision was not made by verde: SchemaUnknown.
    """
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        if revision is None and inspect(conn).get_table_names():
            # Each statement sees what is committed when it runs (READ COMMITTED): another
            # process's first migration may have committed the tables and their revision
            # between the two reads. Read the revision again before calling it foreign.
            revision = MigrationContext.configure(conn).get_current_revision()
        if revision is None and inspect(conn).get_table_names():
            raise SchemaUnknown("the database has tables but no verde schema revision "
                                "(alembic_version): give verde a database of its own")
    return revision


def _make_engine(url: str) -> Engine:
    check_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 10, "check_same_thread": False}
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise StorageError(f"cannot use database {safe_url(url)!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _apply_policy(engine: Engine, policy: SchemaPolicy) -> None:
    if policy == "upgrade":
        command.upgrade(alembic_config(engine), "head")
        return
    if policy == "ignore":
        with engine.connect():
            return
    current = current_revision(engine)
    head = head_revision()
    if current is None:
        command.upgrade(alembic_config(engine), "head")  # a fresh install
    elif current != head:
        script = ScriptDirectory(str(MIGRATIONS))
        known = {rev.revision for rev in script.walk_revisions()}
        if current in known:
            raise SchemaOutdated(f"the database schema is at revision {current}, this "
                                 f"release needs {head}: run `verde arbiter migrate` first")
        raise SchemaUnknown(f"the database schema is at revision {current}, which this "
                            f"release does not know (its newest is {head}): a newer "
                            "release wrote it")


def open_database(url: str = DEFAULT_URL, *, schema: SchemaPolicy = "upgrade") -> Database:
    """Connect to ``url`` (SQLAlchemy URL) and apply the schema policy; one clear error if not."""
    engine = _make_engine(url)
    try:
        _apply_policy(engine, schema)
    except StorageError:
        engine.dispose()
        raise
    except OperationalError as exc:
        engine.dispose()
        raise StorageError(f"cannot open database {safe_url(url)!r}: {exc.orig}") from None
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StorageError(f"cannot migrate database {safe_url(url)!r}: {exc}") from None
    return Database(url, engine, sessionmaker(engine, expire_on_commit=False))


def migrate_database(url: str, target: str = "head") -> tuple[str | None, str | None]:
    """Apply the migrations up to ``target``; returns the revisions before and after."""
    db = open_database(url, schema="ignore")
    try:
        before = current_revision(db.engine)
        try:
            command.upgrade(alembic_config(db.engine), target)
        except OperationalError as exc:
            raise StorageError(f"cannot migrate database {safe_url(url)!r}: {exc.orig}") from None
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot migrate database {safe_url(url)!r}: {exc}") from None
        except Exception as exc:  # alembic's CommandError / ResolutionError: a bad target
            if type(exc).__module__.startswith("alembic"):
                raise StorageError(f"cannot migrate to {target!r}: {exc}") from None
            raise
        return before, current_revision(db.engine)
    finally:
        db.close()
