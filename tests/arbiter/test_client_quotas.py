"""Per-client quotas and the arbiter's bounds, on their own and over real gRPC on 127.0.0.1."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from arbiter.access import AccessPolicy
from arbiter.arbiter_app import start_arbiter
from arbiter.arbiter_client import ArbiterClient
from arbiter.client_quotas import ClientQuotas, QuotaLimits
from arbiter.errors import ArbiterInputError, QuotaExceeded
from arbiter.provider_app import start_provider
from arbiter.provider_client import GrpcProviderPeer
from arbiter.status import RemoteError
from proofs import SigningKey
from tests.arbiter.conftest import SPEC, key_file, signed_results
from verde.protocol.graph.budget import Budget, estimate_cost
from verde.protocol.jobs.spec import JobSpec

ALICE = SigningKey.from_seed(b"alice".ljust(32, b"\0"))
BOB = SigningKey.from_seed(b"bob".ljust(32, b"\0"))


def quotas(concurrent: int | None = None, flops: int | None = None,
           active: set[str] | None = None) -> ClientQuotas:
    live = active if active is not None else set()
    return ClientQuotas(QuotaLimits(concurrent, flops), live.__contains__, what="jobs",
                        flags=("--max-client-jobs", "--max-client-flops"))


def test_concurrent_items_are_counted_until_they_end() -> None:
    active: set[str] = set()
    q = quotas(concurrent=2, active=active)
    for item in ("a", "b"):
        q.reserve("alice", item, 10)
        active.add(item)
        q.confirm("alice", item)
    with pytest.raises(QuotaExceeded, match=r"quota of concurrent jobs is 2 \(--max-client-jobs"):
        q.reserve("alice", "c", 10)
    q.reserve("alice", "a", 10)  # the same item again takes no second slot
    q.reserve("bob", "c", 10)  # another client has its own
    active.discard("a")  # a job finished: its slot is free
    q.reserve("alice", "c", 10)
    assert q.held("alice") == 2


def test_pending_reservations_count_and_refused_items_are_refunded() -> None:
    q = quotas(concurrent=1, flops=25)
    q.reserve("alice", "a", 10)  # pending: not active anywhere yet, still counted
    with pytest.raises(QuotaExceeded):
        q.reserve("alice", "b", 10)
    q.cancel("alice", "a", 10)  # the service refused it after all
    assert q.held("alice") == 0 and q.flops_granted("alice") == 0
    q.reserve("alice", "b", 20)
    q.cancel("alice", "b", 20)
    q.reserve("alice", "c", 20)
    q.confirm("alice", "c")  # inactive once confirmed (done): the slot is free, FLOPs are not
    with pytest.raises(QuotaExceeded, match=r"total FLOPs 25 \(--max-client-flops"):
        q.reserve("alice", "d", 10)


def test_quotas_hold_exactly_under_concurrent_reservations() -> None:
    q = quotas(concurrent=3)
    won: list[str] = []
    barrier = threading.Barrier(20)

    def take(i: int) -> None:
        barrier.wait()
        try:
            q.reserve("alice", f"job{i}", 1)
            won.append(f"job{i}")
        except QuotaExceeded:
            pass

    threads = [threading.Thread(target=take, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 3


def test_limits_must_be_positive() -> None:
    with pytest.raises(ArbiterInputError):
        QuotaLimits(concurrent=0)
    with pytest.raises(ArbiterInputError):
        QuotaLimits(flops=True)


def test_a_provider_refuses_a_client_over_its_flops_quota(tmp_path: Path) -> None:
    one = estimate_cost(JobSpec.from_mapping(SPEC)).total_flops
    policy = AccessPolicy(quotas=QuotaLimits(flops=one * 3 // 2))
    running = start_provider(key_file(tmp_path, "fq"), "127.0.0.1:0", access=policy)
    try:
        address = f"127.0.0.1:{running.port}"
        with GrpcProviderPeer(address, client_key=ALICE) as alice:
            alice.submit(SPEC)
            with pytest.raises(RemoteError, match="total FLOPs") as info:
                alice.submit({**SPEC, "seed": 4})
            assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        with GrpcProviderPeer(address, client_key=BOB) as bob:  # bob's quota is his own
            bob.submit({**SPEC, "seed": 4})
    finally:
        running.close(0)


@pytest.fixture(scope="module")
def results(cluster: dict[str, Any]) -> dict[int, list[tuple[str, str]]]:
    """Two jobs' (address, signed result) entries from the honest and the cheating provider."""
    out = {}
    for seed in (3, 4):
        signed = signed_results(cluster["addrs"], {**SPEC, "seed": seed})
        out[seed] = [(cluster["addrs"][n], signed[n]) for n in ("honest", "cheat")]
    return out


def _open(address: str, seed: int, entries: list[tuple[str, str]],
          key: SigningKey | None = None) -> str:
    with ArbiterClient(address, client_key=key) as client:
        return client.open_dispute({**SPEC, "seed": seed}, entries)


def test_an_arbiter_bounds_disputes_per_client_and_in_all(
        tmp_path: Path, results: dict[int, list[tuple[str, str]]]) -> None:
    # No workers: opened disputes stay open, so each one keeps its slot.
    running = start_arbiter(key_file(tmp_path, "qa"), "127.0.0.1:0",
                            f"sqlite:///{tmp_path / 'q.db'}", workers=0,
                            access=AccessPolicy(quotas=QuotaLimits(concurrent=1)),
                            max_open_disputes=2)
    address = f"127.0.0.1:{running.port}"
    try:
        first = _open(address, 3, results[3], ALICE)
        assert running.engine.store.dispute(first).opened_by == ALICE.public_key.hex()
        with pytest.raises(RemoteError, match="quota of concurrent disputes is 1") as info:
            _open(address, 4, results[4], ALICE)
        assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        second = _open(address, 4, results[4], BOB)  # bob has his own quota: 2 disputes open
        assert running.engine.store.dispute(second).opened_by == BOB.public_key.hex()
        with pytest.raises(RemoteError, match="--max-open-disputes 2") as info:
            _open(address, 3, list(reversed(results[3])))  # a third (anonymous) one
        assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        running.shutdown()


def test_an_arbiter_refuses_a_dispute_over_its_budget(
        tmp_path: Path, results: dict[int, list[tuple[str, str]]]) -> None:
    running = start_arbiter(key_file(tmp_path, "qb"), "127.0.0.1:0",
                            f"sqlite:///{tmp_path / 'b.db'}", workers=0,
                            access=AccessPolicy(budget=Budget(parameters=100)))
    try:
        with pytest.raises(RemoteError, match="needs parameters = ") as info:
            _open(f"127.0.0.1:{running.port}", 3, results[3])
        assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert running.engine.store.list_disputes() == []  # nothing was stored
    finally:
        running.shutdown()
