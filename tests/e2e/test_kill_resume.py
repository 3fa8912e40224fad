"""kill -9 the arbiter mid-dispute, restart it on the same database, get the same verdict.

The engine commits every event before it asks the next question, so a crash loses at most
an answer it had not committed yet; the restarted process (same key, same ``--owner``, so it
reclaims its own lease at once) replays the log and re-asks the pending queries. We kill the
arbiter process group with SIGKILL after a seeded number of committed events, restart it, and
compare with an uninterrupted run on its own database: the same verdict, the committed events
all still there in order, and in fact the very same event log.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arbiter.arbiter_client import ArbiterClient
from arbiter.provider_client import GrpcProviderPeer
from tests.e2e.procs import Cluster, Event, check_event_log, job_spec, read_disputes, read_events

SPEC = job_spec(seed=5, steps=8, batch_size=8)
OWNER = "arbiter-one"
ARB_FLAGS = ("--owner", OWNER, "--lease", "120", "--deadline", "60", "--workers", "2")

pytestmark = pytest.mark.slow


def _db(workdir: Path, name: str) -> str:
    return f"sqlite:///{workdir / name}"


def _open_and_wait(address: str, entries: list[tuple[str, str]], *, wait: bool) -> str:
    client = ArbiterClient(address)
    try:
        did = client.open_dispute(SPEC, entries)
        if wait:
            st = client.wait(did, timeout_s=600, poll_s=0.2)
            assert st.status == "decided", (st.status, st.error)
        return did
    finally:
        client.close()


def _await_events(db_url: str, did: str, n: int, timeout_s: float = 600) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if len(read_events(db_url, did).get(did, [])) >= n + 1:  # + the "opened" event
            return
        time.sleep(0.02)
    raise AssertionError(f"dispute {did} never reached {n} events")


@pytest.fixture(scope="module")
def resume_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("kill-resume"))
    try:
        honest, cheat, base = cluster.start_many([
            ("honest", cluster.provider_argv("honest")),
            ("cheat", cluster.provider_argv("cheat", "compute=corrupt_op,step=6")),
            ("base", cluster.arbiter_argv("arb", _db(cluster.workdir, "base.db"), *ARB_FLAGS)),
        ])
        entries = []
        for svc in (honest, cheat):
            peer = GrpcProviderPeer(svc.address)
            try:
                job_id = peer.submit(SPEC)
                peer.wait(job_id, timeout_s=600)
                entries.append((svc.address,
                                json.dumps(peer.result(job_id).to_json(), sort_keys=True)))
            finally:
                peer.close()
        did = _open_and_wait(base.address, entries, wait=True)
        base.stop()
        baseline = read_events(_db(cluster.workdir, "base.db"), did)[did]
        yield {"cluster": cluster, "entries": entries, "did": did, "baseline": baseline}
    finally:
        cluster.stop_all()


def test_uninterrupted_run_is_a_proper_baseline(resume_env: dict[str, Any]) -> None:
    baseline: list[Event] = resume_env["baseline"]
    check_event_log(baseline)
    assert baseline[-1].kind == "decided"
    verdict = json.loads(baseline[-1].payload)
    assert verdict["winner"] == "a" and verdict["losers"] == ["b"], verdict
    assert verdict["keys"]["a"] == resume_env["cluster"].public_key("honest")
    assert sum(e.kind == "answer" for e in baseline) >= 10


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_arbiter_resumes_to_the_same_verdict(resume_env: dict[str, Any],
                                                    seed: int) -> None:
    cluster: Cluster = resume_env["cluster"]
    baseline: list[Event] = resume_env["baseline"]
    answers = sum(e.kind == "answer" for e in baseline)
    kill_after = random.Random(seed).randint(1, answers - 3)
    db = _db(cluster.workdir, f"seed{seed}.db")
    (arb,) = cluster.start_many([(f"arb-{seed}", cluster.arbiter_argv("arb", db, *ARB_FLAGS))])
    did = _open_and_wait(arb.address, resume_env["entries"], wait=False)
    assert did == resume_env["did"]
    _await_events(db, did, kill_after)
    arb.kill_hard()
    before = read_events(db, did)[did]
    check_event_log(before)
    assert before[-1].kind not in ("decided", "failed"), "the dispute ended before the kill"
    assert len(before) >= kill_after + 1
    status, owner, _ = read_disputes(db)[did]
    assert status == "running" and owner == OWNER
    (again,) = cluster.start_many([(f"arb-{seed}-again",
                                    cluster.arbiter_argv("arb", db, *ARB_FLAGS))])
    client = ArbiterClient(again.address)
    try:
        st = client.wait(did, timeout_s=600, poll_s=0.2)
    finally:
        client.close()
    assert st.status == "decided", (st.status, st.error)
    after = read_events(db, did)[did]
    check_event_log(after)
    assert after[: len(before)] == before, "events committed before the kill changed"
    assert json.loads(after[-1].payload) == json.loads(baseline[-1].payload)
    assert [(e.kind, json.loads(e.payload)) for e in after] == \
        [(e.kind, json.loads(e.payload)) for e in baseline]


def test_another_owner_cannot_steal_a_live_lease(resume_env: dict[str, Any]) -> None:
    """The negative side: after the crash, a process with another owner id must wait for the
    lease to expire; it leaves the dispute alone, and the rightful owner then finishes it."""
    cluster: Cluster = resume_env["cluster"]
    db = _db(cluster.workdir, "steal.db")
    (arb,) = cluster.start_many([("arb-steal", cluster.arbiter_argv("arb", db, *ARB_FLAGS))])
    did = _open_and_wait(arb.address, resume_env["entries"], wait=False)
    _await_events(db, did, 3)
    arb.kill_hard()
    before = read_events(db, did)[did]
    (intruder,) = cluster.start_many([("intruder", cluster.arbiter_argv(
        "intruder", db, "--owner", "someone-else", "--lease", "120", "--deadline", "60"))])
    time.sleep(5.0)  # several of the intruder's claim polls (every 0.2 s)
    assert read_events(db, did)[did] == before
    assert read_disputes(db)[did][:2] == ("running", OWNER)
    intruder.stop()
    (owner,) = cluster.start_many([("arb-steal-again",
                                    cluster.arbiter_argv("arb", db, *ARB_FLAGS))])
    client = ArbiterClient(owner.address)
    try:
        assert client.wait(did, timeout_s=600, poll_s=0.2).status == "decided"
    finally:
        client.close()
    assert read_events(db, did)[did][-1].payload == resume_env["baseline"][-1].payload
