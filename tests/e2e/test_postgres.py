"""Two ``verde arbiter serve`` processes sharing one PostgreSQL database.

Each process has its own ``--owner`` and port and drives one dispute at a time
(``--workers 1``); four jobs with a cheating provider are delegated through ``verde
delegate`` at once, so both processes must take disputes from the shared table. Every dispute
is decided correctly, and none is processed twice: read straight from the database, each
event log has seq 0..n without gaps or repeats and no two different answers for one (party,
round), and every provider's won/lost record counts each dispute exactly once.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arbiter.provider_client import GrpcProviderPeer
from tests.e2e.procs import (
    Cluster,
    Event,
    check_no_double_processing,
    fresh_database,
    job_spec,
    job_toml,
    read_disputes,
    read_events,
    run_verde,
)

SEEDS = (21, 22, 23, 24)
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_the_checker_catches_a_dispute_processed_twice() -> None:
    """Negative: two different answers for one (party, round), or a repeated seq, are caught."""
    opened = Event(0, "opened", "{}")
    a1 = Event(1, "answer", json.dumps({"party": "a", "round": 1, "signed": "x"}))
    a1_other = Event(2, "answer", json.dumps({"party": "a", "round": 1, "signed": "y"}))
    a1_again = Event(2, "answer", a1.payload)
    check_no_double_processing([opened, a1, a1_again])  # an identical retransmission is fine
    with pytest.raises(AssertionError, match="two different events"):
        check_no_double_processing([opened, a1, a1_other])
    with pytest.raises(AssertionError):
        check_no_double_processing([opened, a1, Event(1, "answer", a1.payload)])


@pytest.fixture(scope="module")
def pg_env(tmp_path_factory: pytest.TempPathFactory, postgres_url: str
           ) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("postgres"))
    postgres_url = fresh_database(postgres_url, "verde_e2e_two_arbiters")
    try:
        honest, cheat, arb1, arb2 = cluster.start_many([
            ("pg-honest", cluster.provider_argv("pg-honest")),
            ("pg-cheat", cluster.provider_argv("pg-cheat", "compute=corrupt_op,step=4")),
            ("arb1", cluster.arbiter_argv("pg-arb", postgres_url, "--owner", "pg-one",
                                          "--workers", "1")),
            ("arb2", cluster.arbiter_argv("pg-arb", postgres_url, "--owner", "pg-two",
                                          "--workers", "1")),
        ])
        # Train first (providers run one job at a time), so the delegations below open their
        # disputes at nearly the same moment.
        for svc in (honest, cheat):
            peer = GrpcProviderPeer(svc.address)
            try:
                for seed in SEEDS:
                    peer.submit(job_spec(seed=seed, steps=8, batch_size=8))
                for seed in SEEDS:
                    peer.wait(peer.submit(job_spec(seed=seed, steps=8, batch_size=8)),
                              timeout_s=600)
            finally:
                peer.close()
        owners_seen: set[str] = set()
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                with contextlib.suppress(Exception):  # the tables may not exist yet
                    owners_seen.update(o for _, o, _ in read_disputes(postgres_url).values()
                                       if o)
                stop.wait(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        procs: list[subprocess.CompletedProcess[str]] = []
        threads = []
        for i, seed in enumerate(SEEDS):
            job = job_toml(cluster.workdir / f"job{seed}.toml", seed=seed, steps=8, batch_size=8)
            arb = (arb1, arb2)[i % 2]
            argv = ["delegate", str(job), "--provider", honest.address, "--provider",
                    cheat.address, "--arbiter", arb.address, "--json"]
            t = threading.Thread(target=lambda a=argv: procs.append(run_verde(a)))
            t.start()
            threads.append(t)
        for t in threads:
            t.join(timeout=900)
        time.sleep(0.2)
        stop.set()
        watcher.join(timeout=10)
        yield {"cluster": cluster, "url": postgres_url, "runs": procs,
               "owners_seen": owners_seen, "honest": honest, "cheat": cheat}
    finally:
        cluster.stop_all()


def test_every_delegation_returns_the_honest_provider(pg_env: dict[str, Any]) -> None:
    runs = pg_env["runs"]
    assert len(runs) == len(SEEDS)
    job_ids = set()
    for res in runs:
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        assert doc["honest_providers"] == [pg_env["honest"].address], doc
        assert doc["dishonest_providers"] == [pg_env["cheat"].address]
        assert len(doc["disputes"]) == 1
        job_ids.add(doc["job_id"])
    assert len(job_ids) == len(SEEDS)


def test_both_arbiter_processes_took_disputes(pg_env: dict[str, Any]) -> None:
    assert pg_env["owners_seen"] == {"pg-one", "pg-two"}


def test_disputes_decided_once_each(pg_env: dict[str, Any]) -> None:
    url: str = pg_env["url"]
    cluster: Cluster = pg_env["cluster"]
    disputes = read_disputes(url)
    ours = [json.loads(r.stdout)["disputes"][0]["dispute_id"] for r in pg_env["runs"]]
    assert len(set(ours)) == len(SEEDS)
    logs = read_events(url)
    honest_key, cheat_key = cluster.public_key("pg-honest"), cluster.public_key("pg-cheat")
    for did in ours:
        status, owner, verdict_json = disputes[did]
        assert status == "decided" and owner is None
        verdict = json.loads(verdict_json or "{}")
        assert verdict["keys"][verdict["winner"]] == honest_key
        assert [verdict["keys"][p] for p in verdict["losers"]] == [cheat_key]
        check_no_double_processing(logs[did])
        assert logs[did][-1].kind == "decided"


def _records(url: str) -> dict[str, tuple[int, int]]:
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from arbiter.storage.models import ProviderRow

    engine = create_engine(url)
    try:
        with Session(engine) as s:
            return {r.public_key: (r.disputes_won, r.disputes_lost)
                    for r in s.scalars(select(ProviderRow))}
    finally:
        engine.dispose()


def test_provider_records_count_each_dispute_once(pg_env: dict[str, Any]) -> None:
    cluster: Cluster = pg_env["cluster"]
    rec = _records(pg_env["url"])
    assert rec[cluster.public_key("pg-honest")] == (len(SEEDS), 0)
    assert rec[cluster.public_key("pg-cheat")] == (0, len(SEEDS))


def test_concurrent_finishes_keep_every_provider_record(postgres_url: str) -> None:
    """Two stores (two engines, like two arbiter processes) finish 2 x 8 disputes of the same
    two providers at once; every win and loss must be counted (no lost update; a Python
    read-modify-write of the counters lost some here before 00d460b)."""
    from arbiter.storage import Store, open_database

    url = fresh_database(postgres_url, "verde_e2e_records")
    stores = [Store(open_database(url)) for _ in range(2)]
    per_store = 8
    try:
        tag = f"{time.time_ns():x}"
        winner, loser = (f"{tag}{c}".rjust(64, c) for c in "wl")
        job = f"{tag}j".rjust(64, "0")
        stores[0].put_job(job, "{}")
        stores[0].upsert_provider(winner)
        stores[0].upsert_provider(loser)
        work = []
        for i, st in enumerate(stores):
            for n in range(per_store):
                did = f"{tag}d{i}x{n}".rjust(64, "0")
                st.create_dispute(did, job, "{}")
                claimed = st.claim(f"owner-{i}", 60.0, did)
                assert claimed is not None
                work.append((st, claimed, f"owner-{i}"))
        start = threading.Barrier(len(work), timeout=60)

        def finish(st: Store, rec: Any, owner: str) -> None:
            start.wait()
            st.finish(rec, owner, verdict_json="{}", certificate_json=None,
                      winners=[winner], losers=[loser])

        threads = [threading.Thread(target=finish, args=w) for w in work]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert stores[0].provider_record(winner) == (len(work), 0)
        assert stores[0].provider_record(loser) == (0, len(work))
    finally:
        for st in stores:
            st.db.close()


MIGRATE_IN_STEP = """
import pathlib, sys, time
from alembic.runtime.migration import MigrationContext
from arbiter.storage import open_database
url, me, other = sys.argv[1:4]
real = MigrationContext.run_migrations
def run(self, **kw):
    pathlib.Path(me).touch()
    end = time.monotonic() + 20
    while not pathlib.Path(other).exists() and time.monotonic() < end:
        time.sleep(0.01)
    real(self, **kw)
MigrationContext.run_migrations = run
open_database(url).close()
"""


def test_two_processes_migrating_a_fresh_database_at_once(postgres_url: str,
                                                          tmp_path: Path) -> None:
    """Two processes migrate one new database; each waits, just before running its
    migrations, until the other got there too: the interleaving two ``verde arbiter serve``
    processes hit when they start together."""
    import sys

    url = fresh_database(postgres_url, "verde_e2e_migrate")
    marks = [tmp_path / "one", tmp_path / "two"]
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE_IN_STEP, url, str(me), str(other)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
             for me, other in (marks, marks[::-1])]
    outs = []
    for proc in procs:
        try:
            outs.append((proc.wait(timeout=300), proc.stdout.read() if proc.stdout else ""))
        finally:
            if proc.poll() is None:
                proc.kill()
    assert all(m.exists() for m in marks)
    assert [rc for rc, _ in outs] == [0, 0], [out[-600:] for _, out in outs]
