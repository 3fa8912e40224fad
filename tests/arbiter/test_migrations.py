"""Schema revisions: services refuse an old schema, ``verde arbiter migrate`` upgrades it.

The end-to-end upgrade of a database written by the previous release, with disputes that
then resume, is tests/e2e/test_upgrade.py; these are the rules around it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from arbiter.storage import SchemaOutdated, SchemaUnknown, Store, open_database
from arbiter.storage.db import alembic_config, current_revision, head_revision
from arbiter.storage.models import Base
from cli import exit_codes
from cli.main import cli, main

#: The schema of the release before revision 0002 (the events' owner column).
PREVIOUS = "0001"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``verde ARGV`` in this process, exit code and stderr as the user sees them."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    return int(info.value.code or 0), capsys.readouterr().err


def _sql(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _at_revision(path: Path, revision: str) -> str:
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    try:
        command.upgrade(alembic_config(engine), revision)
    finally:
        engine.dispose()
    return url


def test_the_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'head.db'}")
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        # Revision 0001 left the timestamp columns nullable while the models say NOT NULL
        # (always filled by defaults); everything else must match.
        diff = [d for d in diff if not (isinstance(d, list) and d[0][0] == "modify_nullable"
                                        and d[0][3] in ("created_at", "updated_at"))]
        assert diff == []
        assert current_revision(db.engine) == head_revision() != PREVIOUS
    finally:
        db.close()


def test_a_service_creates_an_empty_database_but_refuses_an_old_one(tmp_path: Path) -> None:
    fresh = open_database(f"sqlite:///{tmp_path / 'fresh.db'}", schema="require")
    assert current_revision(fresh.engine) == head_revision()
    fresh.close()
    old = _at_revision(tmp_path / "old.db", PREVIOUS)
    with pytest.raises(SchemaOutdated, match=f"revision {PREVIOUS}.*verde arbiter migrate"):
        open_database(old, schema="require")
    _sql(old, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaUnknown, match="9999, which this release does not know"):
        open_database(old, schema="require")


def test_a_database_that_verde_did_not_make_is_refused(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    url = f"sqlite:///{tmp_path / 'foreign.db'}"
    _sql(url, "CREATE TABLE people (name TEXT)")
    with pytest.raises(SchemaUnknown, match="no verde schema revision"):
        open_database(url, schema="require")
    code, err = _run(["arbiter", "migrate", "--db", url], capsys)
    assert code == exit_codes.BAD_INPUT
    assert err.count("\n") == 1 and err.startswith("verde: error: the database has tables")


def test_migrate_upgrades_keeps_the_data_and_reports(tmp_path: Path) -> None:
    url = _at_revision(tmp_path / "old.db", PREVIOUS)
    _sql(url,  # rows as the previous release wrote them
         "INSERT INTO jobs (job_id, spec_json) VALUES ('j', '{}')",
         "INSERT INTO disputes (dispute_id, job_id, status, state_json, phase, rounds, "
         "version) VALUES ('d', 'j', 'running', '{}', 'graph_descent', 7, 9)",
         "INSERT INTO dispute_events (dispute_id, seq, kind, payload_json) VALUES "
         "('d', 0, 'opened', '{}'), ('d', 1, 'answer', '{\"x\": 1}')")
    runner = CliRunner()
    check = runner.invoke(cli, ["arbiter", "migrate", "--db", url, "--check", "--json"])
    assert check.exit_code == exit_codes.FALSE
    assert json.loads(check.output) == {"db": url, "revision": PREVIOUS,
                                        "head": head_revision(), "up_to_date": False}
    res = runner.invoke(cli, ["arbiter", "migrate", "--db", url])
    assert res.exit_code == 0, res.output
    assert f"migrated from revision {PREVIOUS} to {head_revision()}" in res.output
    again = runner.invoke(cli, ["arbiter", "migrate", "--db", url, "--json"])
    assert json.loads(again.output)["from"] == json.loads(again.output)["to"] == head_revision()
    assert runner.invoke(cli, ["arbiter", "migrate", "--db", url, "--check"]).exit_code == 0
    db = open_database(url, schema="require")
    try:
        store = Store(db)
        rec = store.dispute("d")
        assert (rec.status, rec.phase, rec.rounds, rec.version) == ("running",
                                                                    "graph_descent", 7, 9)
        assert [(e.seq, e.kind) for e in store.events("d")] == [(0, "opened"), (1, "answer")]
    finally:
        db.close()


def test_migrate_to_an_unknown_revision_is_one_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    code, err = _run(["arbiter", "migrate", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--to",
                      "nope"], capsys)
    assert code == exit_codes.BAD_INPUT
    assert err.count("\n") == 1 and "cannot migrate to 'nope'" in err


def test_the_newest_migration_can_be_undone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'down.db'}"
    db = open_database(url)
    try:
        command.downgrade(alembic_config(db.engine), PREVIOUS)
        assert current_revision(db.engine) == PREVIOUS
    finally:
        db.close()
