"""SIGTERM mid-dispute on PostgreSQL hands the dispute to the other arbiter (issue 19).

Two ``verde arbiter serve`` processes share a PostgreSQL database (migrated first with
``verde arbiter migrate``). The providers answer through relays (``tests.e2e.relay``) that
hold round 2's first answer: the arbiter driving the dispute gets SIGTERM while it waits for
it, finishes that round once the answer is released, releases the lease and exits 0; the
other arbiter takes the dispute at once (the lease is 10 minutes, so nothing waited for it to
expire) and reaches the same verdict as an uninterrupted arbiter.
"""

from __future__ import annotations

import json
import time

import pytest

from arbiter.arbiter_client import ArbiterClient
from tests.e2e.conftest import relayed_providers, signed_entries
from tests.e2e.procs import (
    Cluster,
    baseline_verdict,
    check_no_double_processing,
    event_owners,
    fresh_database,
    job_spec,
    read_disputes,
    read_events,
    run_verde,
    wait_until,
)
from tests.e2e.relay import HeldAnswer

pytestmark = pytest.mark.slow
LONG_LEASE = ("--lease", "600", "--deadline", "60")


@pytest.mark.postgres
def test_sigterm_mid_dispute_hands_it_to_the_other_arbiter(
        postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    cluster = Cluster(tmp_path_factory.mktemp("drain"))
    url = fresh_database(postgres_url, "verde_e2e_drain")
    seed = 41
    held = HeldAnswer(held=3)
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
            held.arm()
            with ArbiterClient(arbiters[0].address) as client:
                did = client.open_dispute(job_spec(seed=seed), entries)
            assert held.reached.wait(timeout=300), "the dispute never reached its second round"
            holder_name = read_disputes(url)[did][1]
            holder = next(a for a in arbiters if a.name == holder_name)
            other = next(a for a in arbiters if a is not holder)
            signalled = time.monotonic()
            holder.terminate()
            wait_until(lambda: '"service.draining"' in holder.log(), "the holder to drain", 60)
            time.sleep(1.0)  # its engine stops claiming right after that line
            held.release.set()
            assert holder.proc.wait(timeout=150) == 0, holder.log()[-2000:]
            wait_until(lambda: read_disputes(url)[did][0] == "decided", "the verdict", 300)
            took = time.monotonic() - signalled
            assert took < 300, f"the dispute waited {took:.0f}s: its lease was not released"
            assert other.alive()
    finally:
        held.disarm()
        cluster.stop_all()
    status, owner, verdict_json = read_disputes(url)[did]
    assert (status, owner) == ("decided", None)
    assert json.loads(verdict_json or "{}") == expected
    events = read_events(url, did)[did]
    check_no_double_processing(events)
    owners = event_owners(url, did)
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
