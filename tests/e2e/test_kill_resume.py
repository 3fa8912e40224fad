"""kill -9 the arbiter mid-dispute, restart it on the same database, get the same verdict.

The engine commits every event before it asks the next question, so a crash loses at most
an answer it had not committed yet; the restarted process (same key, same ``--owner``, so it
reclaims its own lease at once) replays the log and re-asks the pending queries. The
providers answer through relays (``tests.e2e.relay``) that hold the answer after a seeded
number of committed ones: we kill the arbiter process group with SIGKILL while it waits for
that answer, restart it, and compare with an uninterrupted run on its own database: the same
verdict, the committed events all still there in order, and in fact the very same event log.
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
from tests.e2e.conftest import relayed_providers, signed_entries
from tests.e2e.procs import Cluster, Event, check_event_log, job_spec, read_disputes, read_events
from tests.e2e.relay import HeldAnswer

SEED = 5
SPEC = job_spec(seed=SEED, steps=8, batch_size=8)
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


def _kill_while_answer_is_held(arb: Any, held: HeldAnswer, committed: int) -> None:
    """Hold the answer after ``committed`` ones, SIGKILL the arbiter while it waits, release."""
    assert held.reached.wait(timeout=600), f"the dispute never reached answer {committed + 1}"
    arb.kill_hard()
    held.disarm()


@pytest.fixture(scope="module")
def resume_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("kill-resume"))
    held = HeldAnswer()
    try:
        with relayed_providers(cluster, held) as (honest, cheat):
            (base,) = cluster.start_many([
                ("base", cluster.arbiter_argv("arb", _db(cluster.workdir, "base.db"),
                                              *ARB_FLAGS))])
            entries = signed_entries({"honest": honest, "cheat": cheat}, SEED)
            did = _open_and_wait(base.address, entries, wait=True)
            base.stop()
            baseline = read_events(_db(cluster.workdir, "base.db"), did)[did]
            yield {"cluster": cluster, "entries": entries, "did": did, "baseline": baseline,
                   "held": held}
    finally:
        held.disarm()
        cluster.stop_all()


def test_uninterrupted_run_is_a_proper_baseline(resume_env: dict[str, Any]) -> None:
    baseline: list[Event] = resume_env["baseline"]
    check_event_log(baseline)
    assert baseline[-1].kind == "decided"
    verdict = json.loads(baseline[-1].payload)
    assert verdict["winner"] == "a" and verdict["losers"] == ["b"], verdict
    assert verdict["keys"]["a"] == resume_env["cluster"].public_key("cfg-honest")
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
    held: HeldAnswer = resume_env["held"]
    held.arm(kill_after + 1)
    did = _open_and_wait(arb.address, resume_env["entries"], wait=False)
    assert did == resume_env["did"]
    _kill_while_answer_is_held(arb, held, kill_after)
    before = read_events(db, did)[did]
    check_event_log(before)
    assert before[-1].kind == "answer"
    assert len(before) == kill_after + 1  # the opening and exactly the answers committed
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
    held: HeldAnswer = resume_env["held"]
    held.arm(4)
    did = _open_and_wait(arb.address, resume_env["entries"], wait=False)
    _kill_while_answer_is_held(arb, held, 3)
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
