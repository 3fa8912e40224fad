"""Budgets before allocation and per-client quotas, against real ``verde provider serve``
processes on 127.0.0.1.

A spec with an MLP 10^9 wide, 1000 layers deep and 10^7 steps is refused at submit with
RESOURCE_EXHAUSTED naming the limit, and the provider's peak resident memory (VmHWM) does not
move; twenty callers submitting at once, from two allowed keys, get exactly their quota of
concurrent jobs each, and a key off the allow list gets none.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from arbiter.caller_auth import signed_channel
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from proofs import SigningKey
from tests.e2e.procs import (
    Cluster,
    Service,
    assert_one_error_line,
    job_spec,
    job_toml,
    run_verde,
)

pytestmark = pytest.mark.slow  # three provider processes and two `verde delegate` runs
ABSURD = {**job_spec(seed=1), "config": {"hidden": 10**9, "layers": 1000}, "steps": 10**7}
QUOTA = 3
CALLERS = 20
#: Peak memory may grow this much while refusing (allocator noise, gRPC buffers); the job it
#: refuses would need about 4 * 10^21 bytes.
SLACK_BYTES = 48 << 20


def peak_rss(svc: Service) -> int:
    """VmHWM of the service's process (bytes): the most memory it ever held."""
    for line in Path(f"/proc/{svc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def submit(stub: rpc.ProviderStub, spec: dict[str, Any]) -> tuple[grpc.StatusCode, str]:
    try:
        reply = stub.SubmitJob(pb.JobRequest(spec_json=json.dumps(spec)), timeout=120)
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, reply.job_id


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("budgets"))
    try:
        yield c
    finally:
        c.stop_all()


def test_an_absurd_job_is_refused_before_any_allocation(cluster: Cluster) -> None:
    (svc,) = cluster.start_many([("budget-prov", cluster.provider_argv("budget-prov"))])
    assert svc.log().count("no --allow-clients list") == 1  # open: one warning at start
    channel = grpc.insecure_channel(svc.address)
    stub = rpc.ProviderStub(channel)
    try:
        # Warm up what every refusal uses (the dataset, the meta build, the shape-only trace)
        # with a small job over the steps limit, then take the baseline.
        code, detail = submit(stub, {**job_spec(seed=2), "steps": 2 * 10**6})
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "steps" in detail, detail
        idle = peak_rss(svc)
        code, detail = submit(stub, ABSURD)
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, (code, detail)
        assert "steps = 10,000,000" in detail and "1,000,000" in detail, detail
        code, detail = submit(stub, {**ABSURD, "steps": 1000})
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, (code, detail)
        assert "needs parameters = " in detail and "limit of 1,000,000,000" in detail, detail
        assert peak_rss(svc) - idle < SLACK_BYTES, (idle, peak_rss(svc))
        # The negative beside it: a job inside the budget is accepted.
        code, job_id = submit(stub, job_spec(seed=4, steps=2))
        assert code is grpc.StatusCode.OK and len(job_id) == 64
        assert svc.alive()
    finally:
        channel.close()


def test_per_client_quotas_hold_under_twenty_concurrent_callers(cluster: Cluster) -> None:
    keys = {name: SigningKey.from_seed(name.encode().ljust(32, b"\0"))
            for name in ("alice", "bob", "mallory")}
    allow = cluster.workdir / "clients.txt"
    allow.write_text("# alice and bob\n" + "".join(
        f"{keys[n].public_key.hex()}\n" for n in ("alice", "bob")))
    argv = [*cluster.provider_argv("quota-prov"), "--allow-clients", str(allow),
            "--max-client-jobs", str(QUOTA)]
    (svc,) = cluster.start_many([("quota-prov", argv)])
    assert "no --allow-clients list" not in svc.log()
    channels = {n: signed_channel(grpc.insecure_channel(svc.address), k)
                for n, k in keys.items()}
    outcomes: list[tuple[str, grpc.StatusCode, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(CALLERS + 2)

    def caller(i: int, who: str) -> None:
        stub = rpc.ProviderStub(channels[who])
        # Long jobs (run one at a time): every accepted one stays queued or running.
        spec = job_spec(seed=1000 + i, steps=200_000)
        start.wait()
        code, detail = submit(stub, spec)
        with lock:
            outcomes.append((who, code, detail))

    threads = [threading.Thread(target=caller, args=(i, "alice" if i % 2 else "bob"))
               for i in range(CALLERS)]
    threads += [threading.Thread(target=caller, args=(CALLERS + i, "mallory"))
                for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    try:
        assert len(outcomes) == CALLERS + 2
        for who in ("alice", "bob"):
            mine = [(c, d) for w, c, d in outcomes if w == who]
            accepted = [d for c, d in mine if c is grpc.StatusCode.OK]
            refused = [d for c, d in mine if c is grpc.StatusCode.RESOURCE_EXHAUSTED]
            assert len(accepted) == QUOTA, (who, mine)
            assert len(refused) == CALLERS // 2 - QUOTA, (who, mine)
            assert all(f"quota of concurrent jobs is {QUOTA}" in d for d in refused), refused
        assert [c for w, c, _ in outcomes if w == "mallory"] == \
            [grpc.StatusCode.PERMISSION_DENIED] * 2
        assert sum("submitted by" in line for line in svc.log().splitlines()) == 2 * QUOTA
    finally:
        for channel in channels.values():
            channel.close()
        svc.stop()


def test_delegate_signs_with_its_key_and_an_allow_list_holds(cluster: Cluster) -> None:
    alice = SigningKey.load(cluster.key("client-alice"))
    allow = cluster.workdir / "delegate-clients.txt"
    allow.write_text(f"{alice.public_key.hex()}  # alice\n")
    argv = [*cluster.provider_argv("allow-prov"), "--allow-clients", str(allow)]
    (svc,) = cluster.start_many([("allow-prov", argv)])
    job = job_toml(cluster.workdir / "job.toml", seed=11, steps=3)
    base = ["delegate", str(job), "--provider", svc.address]
    ok = run_verde([*base, "--key", str(cluster.key("client-alice")), "--json"])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["honest_providers"] == [svc.address]
    assert f"from {alice.public_key.hex()[:16]}" in svc.log()  # who submitted is logged
    anonymous = run_verde(base)  # a fresh key of its own: not on the list
    assert_one_error_line(anonymous, 3, "not on this service's allow list", "PERMISSION_DENIED")
    svc.stop()
