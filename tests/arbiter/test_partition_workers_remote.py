"""Partition workers on "other machines" (listening on 127.0.0.1): a provider computing its
steps' partitions on two local processes and two remote workers commits to the states of one
process and wins its dispute; a worker without the provider's secret, or no worker at the
address, fails the job with one clear error and leaves the provider serving."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from arbiter import partition_worker_host
from arbiter.errors import ArbiterInputError
from arbiter.partition_worker_host import PartitionWorkerServer, remote_worker, split_address
from arbiter.provider_app import _remote_workers
from proofs import SigningKey
from verde.protocol.dispute.driver import run_dispute
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers import LocalPeer
from verde.protocol.provider.provider import Provider
from verde.protocol.provider.workers import WorkerError

SECRET = bytes(range(32))
JOB = {"program": "mlp", "steps": 3, "batch_size": 8, "partitions": 4, "seed": 9,
       "dataset": {"name": "digits"}, "optimizer": {"name": "adam", "lr": 0.01}}


def key(label: str) -> SigningKey:
    return SigningKey.from_seed(label.encode().ljust(32, b"\0")[:32])


@pytest.fixture
def servers() -> Iterator[list[PartitionWorkerServer]]:
    started = [PartitionWorkerServer("127.0.0.1:0", SECRET) for _ in range(2)]
    yield started
    for server in started:
        server.close()


def _address(server: PartitionWorkerServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def spec() -> JobSpec:
    return JobSpec.from_mapping(JOB)


@pytest.fixture(scope="module")
def one_process(spec: JobSpec) -> Provider:
    provider = Provider(key("one"), "one")
    provider.submit(spec)
    return provider


def test_remote_and_local_workers_commit_to_one_process_states(
        spec: JobSpec, one_process: Provider, servers: list[PartitionWorkerServer]) -> None:
    provider = Provider(key("spread"), "spread", workers=2, keep_values_below=0,
                        remote_workers=[remote_worker(_address(s), SECRET) for s in servers])
    try:
        provider.submit(spec)
        assert [s.answered for s in servers] == [spec.steps, spec.steps]  # they computed
        assert provider.jobs[spec.job_id].step_roots == one_process.jobs[spec.job_id].step_roots

        # ... and that provider wins the dispute against a cheater
        cheater = CheatingProvider(key("cheat"), "cheat", plan=FaultPlan("corrupt_op", step=2))
        cheater.submit(spec)
        peers = {"a": LocalPeer(cheater), "b": LocalPeer(provider)}
        state = DisputeState(spec, peers["a"].result(spec.job_id),
                             peers["b"].result(spec.job_id))
        verdict = run_dispute(state, peers)
        assert verdict.winner == "b" and verdict.losers == ("a",)
    finally:
        provider.close()


def test_only_remote_workers_are_enough(spec: JobSpec, one_process: Provider,
                                        servers: list[PartitionWorkerServer]) -> None:
    provider = Provider(key("remote"), "remote",
                        remote_workers=[remote_worker(_address(servers[0]), SECRET)])
    try:
        provider.submit(spec)
    finally:
        provider.close()
    assert servers[0].answered == spec.steps and servers[1].answered == 0
    assert provider.jobs[spec.job_id].step_roots == one_process.jobs[spec.job_id].step_roots


def test_a_worker_without_the_secret_fails_the_job_not_the_provider(
        spec: JobSpec, servers: list[PartitionWorkerServer]) -> None:
    address = _address(servers[0])
    provider = Provider(key("wrong"), "wrong",
                        remote_workers=[remote_worker(address, bytes(32))])
    try:
        with pytest.raises(WorkerError, match=f"worker at {address}: the worker does not hold "
                                              "this provider's worker secret"):
            provider.submit(spec)
        assert servers[0].answered == 0
        plain = JobSpec.from_mapping({**JOB, "partitions": 1})
        provider.submit(plain)  # the provider still serves jobs it computes itself
        assert provider.result(plain.job_id) is not None
    finally:
        provider.close()


def test_no_worker_at_the_address_is_one_clear_error(spec: JobSpec) -> None:
    closed = PartitionWorkerServer("127.0.0.1:0", SECRET)
    address = _address(closed)
    closed.close()
    provider = Provider(key("none"), "none", remote_workers=[remote_worker(address, SECRET)])
    try:
        with pytest.raises(WorkerError, match=rf"step 1 of job .* worker at {address}: cannot "
                                              "connect"):
            provider.submit(spec)
    finally:
        provider.close()


@pytest.mark.parametrize("address", ["nohost", ":7100", "host:port", "host:70000"])
def test_bad_worker_addresses_are_refused(address: str) -> None:
    with pytest.raises(ArbiterInputError, match="expected HOST:PORT"):
        split_address(address)


def test_remote_workers_need_a_secret_file(tmp_path) -> None:
    with pytest.raises(ArbiterInputError, match="--worker-at needs --worker-secret"):
        _remote_workers(["127.0.0.1:7100"], None)
    bad = tmp_path / "secret"
    bad.write_text("not hex")
    with pytest.raises(ArbiterInputError, match="expected 64 hex digits"):
        _remote_workers(["127.0.0.1:7100"], bad)
    assert _remote_workers([], None) == []


def test_strangers_cannot_hold_every_connection(monkeypatch: pytest.MonkeyPatch,
                                                spec: JobSpec, one_process: Provider) -> None:
    # Connections that never finish the handshake take at most MAX_CONNECTIONS threads; one
    # more is closed at once. When they go, the provider is served again.
    monkeypatch.setattr(partition_worker_host, "MAX_CONNECTIONS", 2)
    server = PartitionWorkerServer("127.0.0.1:0", SECRET)
    strangers = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    try:
        extra = socket.create_connection(("127.0.0.1", server.port))
        extra.settimeout(10)
        assert extra.recv(1) == b""  # closed by the worker, not left waiting
        extra.close()
        for s in strangers:
            s.close()
        provider = Provider(key("after"), "after",
                            remote_workers=[remote_worker(_address(server), SECRET)])
        try:
            for _ in range(50):  # the strangers' threads end once their sockets close
                try:
                    provider.submit(spec)
                    break
                except WorkerError:
                    time.sleep(0.1)
            assert provider.jobs[spec.job_id].step_roots == \
                one_process.jobs[spec.job_id].step_roots
        finally:
            provider.close()
    finally:
        server.close()
