"""Lifecycle end to end: SIGTERM hands a dispute to the other arbiter; an upgrade resumes.

- Two ``verde arbiter serve`` processes share a PostgreSQL database (migrated first with
  ``verde arbiter migrate``). The one driving a dispute gets SIGTERM mid-dispute: it finishes
  its round, releases the lease and exits 0; the other arbiter takes the dispute at once (the
  lease is 10 minutes, so nothing waited for it to expire) and reaches the same verdict as an
  uninterrupted arbiter.
- The previous release (main at this branch's base, schema revision 0001, its own code from
  git) runs an arbiter with two disputes open, one of them half-way, and is killed. The new
  release refuses that database until ``verde arbiter migrate`` upgraded it, then resumes
  both disputes to the uninterrupted verdicts, keeping every event the old release committed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from arbiter.arbiter_client import ArbiterClient
from tests.e2e.conftest import relayed_providers, signed_entries
from tests.e2e.procs import (
    Cluster,
    Event,
    check_event_log,
    check_no_double_processing,
    fresh_database,
    job_spec,
    read_disputes,
    read_events,
    run_verde,
)

pytestmark = pytest.mark.slow
#: main when revision 0002 was written: the last release whose schema is revision 0001.
PREVIOUS_RELEASE = "e7b018a4f248ca20ead47d16cbbd746bd54139e5"
REPO = Path(__file__).resolve().parents[2]
LONG_LEASE = ("--lease", "600", "--deadline", "60")


def baseline_verdict(workdir: Path, seed: int, entries: list[tuple[str, str]]) -> dict[str, Any]:
    """The verdict of an uninterrupted arbiter (an engine in this process, on SQLite)."""
    from arbiter.engine import ArbiterEngine
    from arbiter.provider_client import GrpcProviderPeer
    from arbiter.storage import Store, open_database
    from proofs import SigningKey

    store = Store(open_database(f"sqlite:///{workdir / f'baseline-{seed}.db'}"))
    engine = ArbiterEngine(store, SigningKey.generate(), GrpcProviderPeer, owner="baseline",
                           lease_s=600, deadline_s=60, observers=())
    try:
        did = engine.open_dispute(job_spec(seed=seed), entries).dispute_id
        assert engine.work_once(did)
        rec = store.dispute(did)
        assert rec.status == "decided", rec.error
        return dict(json.loads(rec.verdict_json or "{}"))
    finally:
        engine.close()
        store.db.close()


def _await(predicate: Any, what: str, timeout_s: float = 600) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _owners(db_url: str, did: str) -> list[str | None]:
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from arbiter.storage.models import DisputeEventRow

    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            return list(s.scalars(select(DisputeEventRow.owner).where(
                DisputeEventRow.dispute_id == did).order_by(DisputeEventRow.seq)))
    finally:
        engine.dispose()


class HeldAnswer:
    """Once armed, holds the third dispute answer (round 2's first) until released.

    The arbiter then waits for that answer with one round committed: the SIGTERM lands in
    the middle of a round whatever the machine's speed, and the dispute cannot end before it.
    """

    HELD = 3

    def __init__(self) -> None:
        self.armed = False
        self.seen = 0
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, _n: int) -> None:
        if not self.armed:
            return
        self.seen += 1
        if self.seen == self.HELD:
            self.reached.set()
            # Well inside the arbiter's answer deadline (60 s): never a silence.
            self.release.wait(timeout=45)


@pytest.mark.postgres
def test_sigterm_mid_dispute_hands_it_to_the_other_arbiter(
        postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    cluster = Cluster(tmp_path_factory.mktemp("drain"))
    url = fresh_database(postgres_url, "verde_e2e_drain")
    seed = 41
    held = HeldAnswer()
    migrated = run_verde(["arbiter", "migrate", "--db", url])
    assert migrated.returncode == 0 and "migrated from revision none" in migrated.stdout, \
        migrated.stderr
    try:
        with relayed_providers(cluster, held) as (honest, cheat):
            entries = signed_entries({"honest": honest, "cheat": cheat}, seed)
            expected = baseline_verdict(cluster.workdir, seed, entries)
            arbiters = cluster.start_many([
                (owner, cluster.arbiter_argv("drain-arb", url, "--owner", owner, "--workers",
                                             "1", *LONG_LEASE, "--log-format", "json",
                                             "--drain-timeout", "120"))
                for owner in ("pg-a", "pg-b")])
            held.armed = True
            with ArbiterClient(arbiters[0].address) as client:
                did = client.open_dispute(job_spec(seed=seed), entries)
            assert held.reached.wait(timeout=300), "the dispute never reached its second round"
            holder_name = read_disputes(url)[did][1]
            holder = next(a for a in arbiters if a.name == holder_name)
            other = next(a for a in arbiters if a is not holder)
            signalled = time.monotonic()
            holder.terminate()
            _await(lambda: '"service.draining"' in holder.log(), "the holder to drain", 60)
            time.sleep(1.0)  # its engine stops claiming right after that line
            held.release.set()
            assert holder.proc.wait(timeout=150) == 0, holder.log()[-2000:]
            _await(lambda: read_disputes(url)[did][0] == "decided", "the verdict", 300)
            took = time.monotonic() - signalled
            assert took < 300, f"the dispute waited {took:.0f}s: its lease was not released"
            assert other.alive()
    finally:
        held.release.set()
        cluster.stop_all()
    status, owner, verdict_json = read_disputes(url)[did]
    assert (status, owner) == ("decided", None)
    assert json.loads(verdict_json or "{}") == expected
    events = read_events(url, did)[did]
    check_no_double_processing(events)
    owners = _owners(url, did)
    handed = owners.index(other.name)
    # opened (no owner), round 1's two answers, round 2's two (the round in flight at the
    # signal is finished, then released): the other arbiter starts at round 3.
    assert owners[0] is None and set(owners[1:handed]) == {holder.name}
    assert set(owners[handed:]) == {other.name} and handed == 5
    held_log = [json.loads(line) for line in holder.log().splitlines()]
    assert [d["event"] for d in held_log if d.get("dispute_id") == did][-1] == \
        "dispute.released"
    assert held_log[-1]["event"] == "service.stopped"
    resumed = [json.loads(line) for line in other.log().splitlines()]
    claims = [d for d in resumed if d["event"] == "dispute.claimed"]
    assert claims and claims[0]["dispute_id"] == did and claims[0]["round"] > 0


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


@pytest.mark.xfail(strict=True, reason=(
    "job ids bind the program's code (program_version) since the bring-your-own-model merge: "
    "the previous release's arbiter refuses results signed over code-bound ids, so its "
    "disputes cannot be opened with this release's providers nor resumed by this release; "
    "a cross-version upgrade needs previous-release providers and a migration of openings"))
def test_a_database_of_the_previous_release_migrates_and_its_disputes_resume(
        config_providers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    cluster = Cluster(tmp_path_factory.mktemp("upgrade"))
    old_code = _previous_release(cluster.workdir / "previous-release")
    db = f"sqlite:///{cluster.workdir / 'arbiter.db'}"
    seeds = (51, 52)
    entries = {seed: signed_entries(config_providers, seed) for seed in seeds}
    expected = {seed: baseline_verdict(cluster.workdir, seed, entries[seed]) for seed in seeds}
    # The old packages first on sys.path (before the working directory and this checkout).
    old_verde = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(old_code)!r}); "
                 "from cli.main import main; main()"]
    flags = ("--owner", "upgrader", "--workers", "1", *LONG_LEASE)
    try:
        (old,) = cluster.start_many([("old-arbiter", cluster.arbiter_argv("up-arb", db, *flags))],
                                    command=old_verde)
        with ArbiterClient(old.address) as client:
            dids = {seed: client.open_dispute(job_spec(seed=seed), entries[seed])
                    for seed in seeds}
        half, waiting = dids[seeds[0]], dids[seeds[1]]
        _await(lambda: len(read_events(db, half).get(half, [])) >= 5, "the old release's events")
        old.kill_hard()
        check = run_verde(["arbiter", "migrate", "--db", db, "--check", "--json"])
        assert json.loads(check.stdout)["revision"] == "0001", "the old release did not run"
        before = read_events(db)
        assert read_disputes(db)[half][:2] == ("running", "upgrader")
        assert read_disputes(db)[waiting][0] == "open" and len(before[waiting]) == 1
        # The new release refuses the old schema, with the command that fixes it.
        refused = run_verde(cluster.arbiter_argv("up-arb", db, *flags), timeout_s=300)
        lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
        assert refused.returncode == 3 and len(lines) == 1, refused.stderr
        assert "revision 0001" in lines[0] and "verde arbiter migrate" in lines[0]
        migrated = run_verde(["arbiter", "migrate", "--db", db, "--json"])
        assert migrated.returncode == 0, migrated.stderr
        assert json.loads(migrated.stdout)["from"] == "0001"
        (new,) = cluster.start_many([("new-arbiter", cluster.arbiter_argv("up-arb", db, *flags))])
        for did in dids.values():
            _await(lambda d=did: read_disputes(db)[d][0] == "decided", f"dispute {did}", 600)
        assert new.alive()
    finally:
        cluster.stop_all()
    after = read_events(db)
    for seed, did in dids.items():
        events: list[Event] = after[did]
        check_event_log(events)
        assert events[: len(before[did])] == before[did], "the old release's events changed"
        assert json.loads(read_disputes(db)[did][2] or "{}") == expected[seed]
        owners = _owners(db, did)
        old_events = len(before[did])
        assert owners[:old_events] == [None] * old_events  # written before revision 0002
        assert set(owners[old_events:]) == {"upgrader"}
