"""20 concurrent disputes on one ``verde arbiter serve`` process, all on 127.0.0.1.

Twenty tiny jobs (distinct seeds) run on an honest and a cheating provider process; then all
twenty disputes are opened at once on one arbiter driving up to twenty at a time. Every one
must be decided for the honest provider, with a well-formed event log, and the arbiter must log
no error. The load is bounded (twenty disputes, then the test stops) and stays on loopback.
The negative beside it: disputes with a provider process that died before them end
``unreachable`` (it never proved its key where it vouched), condemning nobody.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from arbiter.arbiter_client import ArbiterClient
from arbiter.provider_client import GrpcProviderPeer
from tests.e2e.procs import Cluster, check_event_log, job_spec, read_events

N = 20
SEEDS = tuple(range(100, 100 + N))
pytestmark = pytest.mark.slow


def _spec(seed: int) -> dict[str, object]:
    return job_spec(seed=seed, steps=6, batch_size=8)


def _results(address: str, seeds: tuple[int, ...]) -> dict[int, str]:
    peer = GrpcProviderPeer(address)
    try:
        ids = {seed: peer.submit(_spec(seed)) for seed in seeds}  # queued, run in order
        out = {}
        for seed, job_id in ids.items():
            peer.wait(job_id, timeout_s=900, poll_s=0.5)
            out[seed] = json.dumps(peer.result(job_id).to_json(), sort_keys=True)
        return out
    finally:
        peer.close()


def _run_disputes(arbiter: str, entries: dict[int, list[tuple[str, str]]]
                  ) -> dict[int, tuple[str, Any]]:
    client = ArbiterClient(arbiter)
    try:
        seeds = list(entries)
        with ThreadPoolExecutor(max_workers=len(entries)) as pool:
            ids = dict(zip(seeds, pool.map(lambda s: client.open_dispute(_spec(s), entries[s]),
                                           seeds), strict=True))
            finals = pool.map(lambda s: client.wait(ids[s], timeout_s=900, poll_s=0.5), ids)
            return {s: (ids[s], st) for s, st in zip(ids, finals, strict=True)}
    finally:
        client.close()


@pytest.fixture(scope="module")
def load_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("load"))
    try:
        honest, cheat, arb = cluster.start_many([
            ("honest", cluster.provider_argv("honest")),
            ("cheat", cluster.provider_argv("cheat", "compute=corrupt_op,step=3")),
            ("arb", cluster.arbiter_argv("arb", f"sqlite:///{cluster.workdir / 'arb.db'}",
                                         "--workers", str(N), "--deadline", "30",
                                         "--lease", "90")),
        ])
        with ThreadPoolExecutor(max_workers=2) as pool:
            h, c = pool.map(lambda a: _results(a, SEEDS), [honest.address, cheat.address])
        entries = {s: [(cheat.address, c[s]), (honest.address, h[s])] for s in SEEDS}
        outcomes = _run_disputes(arb.address, entries)
        yield {"cluster": cluster, "arb": arb, "honest": honest, "cheat": cheat,
               "outcomes": outcomes}
    finally:
        cluster.stop_all()


def test_twenty_concurrent_disputes_all_decided_for_the_honest_provider(
        load_env: dict[str, Any]) -> None:
    cluster: Cluster = load_env["cluster"]
    outcomes = load_env["outcomes"]
    assert len({did for did, _ in outcomes.values()}) == N
    honest_key = cluster.public_key("honest")
    bad = {}
    for seed, (_did, st) in outcomes.items():
        verdict = json.loads(st.verdict_json) if st.verdict_json else {}
        if st.status != "decided" or verdict.get("winner") != "b" or \
                verdict.get("keys", {}).get("b") != honest_key:
            bad[seed] = (st.status, st.error, verdict.get("winner"), verdict.get("reason"))
    assert not bad, bad
    db = f"sqlite:///{cluster.workdir / 'arb.db'}"
    logs = read_events(db)
    for did, _ in outcomes.values():
        check_event_log(logs[did])
        assert logs[did][-1].kind == "decided"


def test_the_arbiter_logged_no_error_under_load(load_env: dict[str, Any]) -> None:
    log = load_env["arb"].log()
    assert load_env["arb"].alive()
    for marker in ("Traceback", "ERROR", "internal error", "failed:"):
        assert marker not in log, log[-3000:]


def test_a_provider_dead_before_its_disputes_is_unreachable_not_condemned(
        load_env: dict[str, Any]) -> None:
    """Nothing answers where the dead provider vouched, and it never proved its key there: the
    arbiter cannot tell a dead party from an address taken away from it (issue 15), so the
    disputes end ``unreachable`` -- no verdict, and no loss for anyone. (A party that proved
    its key and then fell silent loses: tests/e2e/test_adversarial.py.)"""
    cluster: Cluster = load_env["cluster"]
    seeds = (500, 501)
    honest, cheat = load_env["honest"], load_env["cheat"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        h, c = pool.map(lambda a: _results(a, seeds), [honest.address, cheat.address])
    cheat.kill_hard()
    entries = {s: [(cheat.address, c[s]), (honest.address, h[s])] for s in seeds}
    outcomes = _run_disputes(load_env["arb"].address, entries)
    for _did, st in outcomes.values():
        assert st.status == "unreachable", (st.status, st.error)
        assert "party a" in st.error and "could not be reached" in st.error, st.error
    with sqlite3.connect(cluster.workdir / "arb.db") as conn:
        lost = dict(conn.execute("SELECT public_key, disputes_lost FROM providers"))
    assert lost.get(cluster.public_key("honest"), 0) == 0


def test_concurrent_first_registrations_do_not_collide(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Two stores (as two request threads) register one new provider at the same moment; a
    barrier right after each looks the row up forces the interleaving a busy arbiter hits."""
    from sqlalchemy.orm import Session

    from arbiter.storage import ProviderRow, Store, open_database

    url = f"sqlite:///{tmp_path / 'arb.db'}"
    stores = [Store(open_database(url)) for _ in range(2)]
    barrier = threading.Barrier(2, timeout=30)
    real_get = Session.get

    def get(self: Session, entity: Any, ident: Any, **kw: Any) -> Any:
        row = real_get(self, entity, ident, **kw)
        if entity is ProviderRow:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
        return row

    monkeypatch.setattr(Session, "get", get)
    errors: list[BaseException] = []

    def register(st: Store) -> None:
        try:
            st.upsert_provider("ab" * 32, "127.0.0.1:1")
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=register, args=(st,)) for st in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        assert not errors, [f"{type(e).__name__}: {e}" for e in errors]
        assert stores[0].provider_record("ab" * 32) == (0, 0)
    finally:
        for st in stores:
            st.db.close()
