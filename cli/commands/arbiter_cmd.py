"""``verde arbiter serve`` and ``verde arbiter migrate``: an arbiter on a SQL database."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from cli import exit_codes
from cli.config import config_option
from cli.options import (
    ENV_BLS_KEY,
    ENV_DB_URL,
    Address,
    DatabaseUrl,
    access_options,
    key_option,
    programs_option,
    service_options,
    tls_options,
    tls_pair_problems,
)
from cli.output import emit

DEFAULT_DB = "sqlite:///verde-arbiter.db"


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", "db_url", type=DatabaseUrl(), default=DEFAULT_DB,
                        show_default=True, envvar=ENV_DB_URL, show_envvar=True,
                        help="SQLAlchemy URL: sqlite:///FILE or postgresql://USER@HOST/DB.")(fn)


def check_serve_settings(values: Mapping[str, Any]) -> list[str]:
    """Settings of ``serve`` that contradict each other (for --config and config check)."""
    from arbiter.engine import check_committee_timing, check_timing

    problems = tls_pair_problems(dict(values))
    if bool(values.get("committee_path")) != bool(values.get("bls_key_path")):
        problems.append("committee and bls-key go together: a committee member needs the "
                        "committee file and its own BLS key")
    elif values.get("committee_path"):
        try:
            check_committee_timing(float(values["deadline_s"]), float(values["lease_s"]))
        except ValueError as exc:
            problems.append(f"deadline/lease: {exc}")
    try:
        check_timing(float(values["deadline_s"]), float(values["lease_s"]))
    except ValueError as exc:
        problems.append(f"deadline/lease: {exc}")
    return problems


@click.group("arbiter")
def arbiter_group() -> None:
    """Run an arbiter (referee of disputes between providers)."""


@arbiter_group.command("serve")
@config_option("arbiter", cross_check=check_serve_settings)
@key_option
@click.option("--listen", type=Address(), default="127.0.0.1:7000", show_default=True,
              help="host:port of the gRPC service.")
@db_option
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Disputes driven at once by this process.")
@click.option("--owner", default=None,
              help="Lease owner id (default: from the key; give each process on a shared "
                   "database its own).")
@click.option("--lease", "lease_s", default=60.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds a dispute stays with this process without progress.")
@click.option("--deadline", "deadline_s", default=30.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds a provider has to answer one query before it forfeits.")
@programs_option
@click.option("--committee", "committee_path", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Committee file (members' BLS keys, proofs of possession and addresses, "
                   "threshold): sit on that committee. Needs --bls-key.")
@click.option("--bls-key", "bls_key_path", default=None, envvar=ENV_BLS_KEY, show_envvar=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="This arbiter's BLS committee key (`verde keys new --bls`).")
@click.option("--max-open-disputes", type=click.IntRange(min=1), default=1000,
              show_default=True,
              help="Disputes the database may hold open at once; more are refused.")
@access_options("--max-client-disputes", "disputes")
@service_options
@tls_options
def serve(*, key_path: Path, listen: str, db_url: str, workers: int, owner: str | None,
          lease_s: float, deadline_s: float, committee_path: Path | None,
          bls_key_path: Path | None, max_open_disputes: int, log_format: str,
          log_level: str, metrics_address: str | None, drain_timeout_s: float, tls: object,
          access: object) -> None:
    """Serve disputes until SIGTERM; resumes unfinished disputes from the database.

    An empty database gets the schema; one written by an older release must be upgraded
    first with `verde arbiter migrate`. On SIGTERM the arbiter takes no new disputes,
    finishes each dispute's round in flight and hands the dispute to the other arbiters on
    the database, then stops.

    With --committee and --bls-key the arbiter sits on a committee: silences count only when
    the committee attests them, and a verdict is stored with the members' co-signatures.
    """
    from arbiter.logs import configure_logging

    configure_logging(log_format, log_level)
    from arbiter.arbiter_app import start_arbiter
    from arbiter.lifecycle import announce, serve_until_signalled
    from arbiter.storage.db import safe_url

    running = start_arbiter(key_path, listen, db_url, workers=workers, owner=owner,
                            lease_s=lease_s, deadline_s=deadline_s, tls=tls,  # type: ignore[arg-type]
                            metrics=metrics_address, schema="require",
                            committee=committee_path, bls_key=bls_key_path,
                            access=access,  # type: ignore[arg-type]
                            max_open_disputes=max_open_disputes)
    announce("arbiter", running.engine.key.public_key.hex(), listen, running.port,
             metrics=running.metrics.address if running.metrics else None,
             db=safe_url(db_url), owner=running.engine.owner)
    if running.access is not None:
        running.access.log_started()
    serve_until_signalled(running, drain_timeout_s)


@arbiter_group.command("migrate")
@config_option("arbiter", ignore_unknown=True)
@db_option
@click.option("--to", "target", default="head", show_default=True,
              help="Schema revision to upgrade to.")
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing: report the revision, exit 1 if the database is behind.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def migrate(*, db_url: str, target: str, check_only: bool, as_json: bool) -> None:
    """Upgrade the arbiter database's schema (Alembic migrations) to this release's.

    Run it once per upgrade, before starting the new release's arbiters; it is safe to run
    again and from several hosts at once (PostgreSQL serialises it).
    """
    from arbiter.storage import migrate_database, open_database
    from arbiter.storage.db import current_revision, head_revision, safe_url

    head = head_revision()
    if check_only:
        db = open_database(db_url, schema="ignore")
        try:
            current = current_revision(db.engine)
        finally:
            db.close()
        doc = {"db": safe_url(db_url), "revision": current, "head": head,
               "up_to_date": current == head}
        emit(doc, as_json=as_json, human=f"database {doc['db']}: revision "
                                         f"{current or 'none (empty)'}, this release {head}")
        if current != head:
            raise click.exceptions.Exit(exit_codes.FALSE)
        return
    before, after = migrate_database(db_url, target)
    doc = {"db": safe_url(db_url), "from": before, "to": after, "head": head}
    human = (f"database {doc['db']}: already at revision {after}" if before == after else
             f"database {doc['db']}: migrated from revision {before or 'none (empty)'} "
             f"to {after}")
    emit(doc, as_json=as_json, human=human)
