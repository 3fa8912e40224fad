"""Upgrades end to end: a database migrated under open disputes (issue 19).

- **Same protocol, previous schema.** This release's arbiter opens two disputes on SQLite and
  is killed (SIGKILL) while it waits for round 2's first answer, held by the relays in front of
  the providers; the database is taken back to the previous schema revision (the newest
  migration's own downgrade: the tables that revision's release wrote). The new release refuses
  it until ``verde arbiter migrate`` upgraded it, then resumes both disputes to the verdicts
  of an uninterrupted arbiter, keeping every event committed before the kill.
- **Previous protocol.** The previous release (main when revision 0002 was written: schema
  0001, protocol 2, job ids not bound to the program's code) runs from its own code, checked
  out of git: its providers, its arbiter and its client open two disputes, and its arbiter is
  killed mid-dispute. After ``verde arbiter migrate`` this release cannot replay them (other
  job ids and commitments): it ends both ``failed`` with the reason, keeps the old events and
  changes nobody's record, and decides a new dispute on the same database.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from arbiter.arbiter_client import ArbiterClient
from tests.e2e.conftest import CHEAT, relayed_providers, signed_entries
from tests.e2e.procs import (
    Cluster,
    Event,
    baseline_verdict,
    check_event_log,
    event_owners,
    job_spec,
    read_disputes,
    read_events,
    run_verde,
    wait_until,
)
from tests.e2e.relay import AnswerHook, HeldAnswer, ProviderRelay

pytestmark = pytest.mark.slow
#: main when revision 0002 was written: the last release whose schema is revision 0001.
PREVIOUS_RELEASE = "e7b018a4f248ca20ead47d16cbbd746bd54139e5"
REPO = Path(__file__).resolve().parents[2]
FLAGS = ("--owner", "upgrader", "--workers", "1", "--lease", "600", "--deadline", "60")
SEEDS = (51, 52)


def _previous_schema(db_url: str) -> str:
    """Take the database back one revision (the newest migration's downgrade); its name."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from arbiter.storage.db import alembic_config, current_revision, head_revision

    engine = create_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        down = ScriptDirectory.from_config(alembic_config(engine)).get_revision(
            head_revision()).down_revision
        assert isinstance(down, str), down
        before = down
        command.downgrade(alembic_config(engine), before)
        assert current_revision(engine) == before
        return before
    finally:
        engine.dispose()


def _refused_then_migrated(cluster: Cluster, db: str, revision: str) -> None:
    """The new release refuses the old schema with the command that fixes it; migrate."""
    refused = run_verde(cluster.arbiter_argv("up-arb", db, *FLAGS), timeout_s=300)
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert refused.returncode == 3 and len(lines) == 1, refused.stderr
    assert f"revision {revision}" in lines[0] and "verde arbiter migrate" in lines[0]
    migrated = run_verde(["arbiter", "migrate", "--db", db, "--json"])
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["from"] == revision


def _half_and_waiting(db: str, dids: dict[int, str]) -> tuple[str, str]:
    """The dispute the killed arbiter was driving (round 1 committed) and the queued one."""
    events = read_events(db)
    half = max(dids.values(), key=lambda d: len(events.get(d, [])))
    waiting = next(d for d in dids.values() if d != half)
    assert len(events[half]) == 3, [e.kind for e in events[half]]  # opened + round 1
    assert len(events[waiting]) == 1 and read_disputes(db)[waiting][0] == "open"
    return half, waiting


def test_a_database_at_the_previous_schema_migrates_and_its_disputes_resume(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    cluster = Cluster(tmp_path_factory.mktemp("upgrade-schema"))
    db = f"sqlite:///{cluster.workdir / 'arbiter.db'}"
    held = HeldAnswer(held=3)
    try:
        with relayed_providers(cluster, held) as (honest, cheat):
            providers = {"honest": honest, "cheat": cheat}
            entries = {seed: signed_entries(providers, seed) for seed in SEEDS}
            expected = {seed: baseline_verdict(cluster.workdir, seed, entries[seed])
                        for seed in SEEDS}
            (old,) = cluster.start_many([("before", cluster.arbiter_argv("up-arb", db,
                                                                          *FLAGS))])
            held.arm()
            with ArbiterClient(old.address) as client:
                dids = {seed: client.open_dispute(job_spec(seed=seed), entries[seed])
                        for seed in SEEDS}
            assert held.reached.wait(timeout=300), "the dispute never reached round 2"
            old.kill_hard()
            held.disarm()
            before = read_events(db)
            half, _ = _half_and_waiting(db, dids)
            revision = _previous_schema(db)
            _refused_then_migrated(cluster, db, revision)
            (new,) = cluster.start_many([("after", cluster.arbiter_argv("up-arb", db,
                                                                         *FLAGS))])
            for did in dids.values():
                wait_until(lambda d=did: read_disputes(db)[d][0] == "decided",
                           f"dispute {did}", 600)
            assert new.alive()
    finally:
        held.disarm()
        cluster.stop_all()
    after = read_events(db)
    for seed, did in dids.items():
        check_event_log(after[did])
        assert after[did][: len(before[did])] == before[did], "committed events changed"
        assert json.loads(read_disputes(db)[did][2] or "{}") == expected[seed]
        assert set(event_owners(db, did)[1:]) == {"upgrader"}
    assert len(after[half]) > len(before[half])


# -- the previous protocol ------------------------------------------------------------------

def _previous_release(dest: Path) -> Path:
    """The previous release's packages, from git, in ``dest`` (skip outside a git clone)."""
    git = shutil.which("git")
    if git is None or subprocess.run([git, "-C", str(REPO), "cat-file", "-e",
                                      f"{PREVIOUS_RELEASE}^{{commit}}"],
                                     check=False, capture_output=True).returncode != 0:
        pytest.skip(f"the previous release {PREVIOUS_RELEASE[:12]} is not in this checkout")
    archive = subprocess.run([git, "-C", str(REPO), "archive", PREVIOUS_RELEASE, "arbiter",
                              "cli", "verde", "proofs", "repops"],
                             check=True, capture_output=True, timeout=120).stdout
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, timeout=120)
    migrations = sorted(p.name for p in (dest / "arbiter/migrations/versions").glob("0*.py"))
    assert migrations == ["0001_initial.py"], migrations
    return dest


def _python_with(code: Path) -> list[str]:
    """This interpreter with ``code``'s packages first on sys.path."""
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(code)!r}); "
            "sys.argv[0] = 'verde'; from cli.main import main; main()"]


#: The previous release's client: trains both jobs, opens both disputes, prints their ids.
OLD_CLIENT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from arbiter.arbiter_client import ArbiterClient
from arbiter.provider_client import GrpcProviderPeer
relays, arbiter, specs = sys.argv[2].split(","), sys.argv[3], json.loads(sys.argv[4])
dids = {}
with ArbiterClient(arbiter) as client:
    for seed, spec in specs.items():
        entries = []
        for address in relays:
            peer = GrpcProviderPeer(address)
            job = peer.submit(spec)
            peer.wait(job, timeout_s=600)
            entries.append((address, json.dumps(peer.result(job).to_json(), sort_keys=True)))
            peer.close()
        dids[seed] = client.open_dispute(spec, entries)
print(json.dumps(dids))
"""


def _error(db: str, did: str) -> str:
    from arbiter.storage.models import DisputeRow

    engine = create_engine(db)
    try:
        with Session(engine) as s:
            return str(s.scalar(select(DisputeRow.error).where(DisputeRow.dispute_id == did)))
    finally:
        engine.dispose()


def _records(db: str) -> list[tuple[int, int]]:
    from arbiter.storage.models import ProviderRow

    engine = create_engine(db)
    try:
        with Session(engine) as s:
            return [(int(w), int(lost)) for w, lost in s.execute(
                select(ProviderRow.disputes_won, ProviderRow.disputes_lost))]
    finally:
        engine.dispose()


def test_a_database_of_the_previous_protocol_migrates_and_its_disputes_end_without_blame(
        config_providers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    cluster = Cluster(tmp_path_factory.mktemp("upgrade-protocol"))
    old_code = _previous_release(cluster.workdir / "previous-release")
    old_verde = _python_with(old_code)
    db = f"sqlite:///{cluster.workdir / 'arbiter.db'}"
    held = HeldAnswer(held=3)
    hook = AnswerHook(held)
    relays = [ProviderRelay(hook), ProviderRelay(hook)]
    try:
        old_providers = cluster.start_many(
            [("old-honest", cluster.provider_argv("old-honest")),
             ("old-cheat", cluster.provider_argv("old-cheat", CHEAT))], command=old_verde)
        for relay, svc in zip(relays, old_providers, strict=True):
            relay.forward_to(svc.address)
        (old,) = cluster.start_many([("old-arbiter", cluster.arbiter_argv("up-arb", db,
                                                                          *FLAGS))],
                                    command=old_verde)
        held.arm()
        opened = subprocess.run(
            [sys.executable, "-c", OLD_CLIENT, str(old_code),
             ",".join(r.address for r in relays), old.address,
             json.dumps({seed: job_spec(seed=seed) for seed in SEEDS})],
            capture_output=True, text=True, timeout=900, check=False)
        assert opened.returncode == 0, opened.stderr[-3000:]
        dids = {int(seed): did for seed, did in json.loads(opened.stdout).items()}
        assert held.reached.wait(timeout=300), "the old release's dispute never reached round 2"
        old.kill_hard()
        held.release.set()
        before = read_events(db)
        half, _ = _half_and_waiting(db, dids)
        check = run_verde(["arbiter", "migrate", "--db", db, "--check", "--json"])
        assert json.loads(check.stdout)["revision"] == "0001", "the old release did not run"
        _refused_then_migrated(cluster, db, "0001")
        (new,) = cluster.start_many([("new-arbiter", cluster.arbiter_argv("up-arb", db,
                                                                           *FLAGS))])
        for did in dids.values():
            wait_until(lambda d=did: read_disputes(db)[d][0] in ("decided", "failed"),
                       f"dispute {did} to end", 600)
        # This release decides its own disputes on the migrated database.
        seed = 53
        entries = signed_entries(config_providers, seed)
        with ArbiterClient(new.address) as client:
            fresh = client.open_dispute(job_spec(seed=seed), entries)
        wait_until(lambda: read_disputes(db)[fresh][0] == "decided", "the new dispute", 600)
        assert json.loads(read_disputes(db)[fresh][2] or "{}") == baseline_verdict(
            cluster.workdir, seed, entries)
        assert new.alive()
    finally:
        held.disarm()
        for relay in relays:
            relay.close()
        cluster.stop_all()
    after = read_events(db)
    for did in dids.values():
        events: list[Event] = after[did]
        check_event_log(events)
        assert events[: len(before[did])] == before[did], "the old release's events changed"
        status, owner, verdict = read_disputes(db)[did]
        assert (status, owner, verdict) == ("failed", None, "{}")
        assert events[-1].kind == "failed"
        reason = _error(db, did)
        assert "protocol version 2" in reason and "nobody loses" in reason, reason
    assert len(after[half]) == len(before[half]) + 1  # only the ending was added
    # Nobody's record changed for the old disputes; the new dispute counted once each way.
    assert sorted(_records(db)) == [(0, 0), (0, 0), (0, 1), (1, 0)]
