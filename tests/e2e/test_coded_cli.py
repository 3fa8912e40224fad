"""``verde train-coded`` end to end: coded training over provider processes and an arbiter.

Four provider processes (one cheating on every gradient it computes) and an arbiter process on
127.0.0.1, driven through the installed ``verde`` command: replicas that disagree are settled
by disputes the arbiter decides, the cheater is named in every step, and the final state is
bit-identical to the uncoded reference computed in this process. Bad input ends as one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli import exit_codes
from tests.e2e.procs import Cluster, assert_one_error_line, job_toml, run_verde

#: Op 25 of the MLP gradient step is the mm giving the first layer's weight gradient: a cheat
#: that always changes the committed gradient.
FAULT = "compute=corrupt_op,step=1,node=25"
STEPS = 2


@pytest.fixture(scope="module")
def coded_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("coded-cli"))
    try:
        *providers, arb = cluster.start_many([
            # c1 takes uploads of at most 1 MiB (MLP states are ~40 KB)
            ("c1", [*cluster.provider_argv("c1"), "--max-upload-mb", "1"]),
            ("c2", cluster.provider_argv("c2")),
            ("c3", cluster.provider_argv("c3")),
            ("c4", cluster.provider_argv("c4", FAULT)),
            ("arb", cluster.arbiter_argv("arb", f"sqlite:///{cluster.workdir / 'arb.db'}")),
        ])
        job = job_toml(cluster.workdir / "job.toml", seed=11, steps=STEPS, batch_size=8)
        yield {"cluster": cluster, "providers": providers, "arb": arb, "job": job}
    finally:
        cluster.stop_all()


def _reference_digest(job: Path) -> str:
    from verde.integration.coded_training import CodedJob, train_reference
    from verde.protocol.jobs.spec_file import load_job_spec

    return train_reference(CodedJob(load_job_spec(job), 2), STEPS).digest


def test_replicated_coding_names_the_cheater_through_the_arbiter(
        coded_cluster: dict[str, Any], tmp_path: Path) -> None:
    providers = coded_cluster["providers"]
    args = ["train-coded", str(coded_cluster["job"]), "--code", "replicated",
            "--replication", "2", "--byzantine", "1", "--detect-only",
            "--arbiter", coded_cluster["arb"].address, "--out", str(tmp_path), "--json"]
    for svc in providers:
        args += ["--provider", svc.address]
    res = run_verde(args)
    assert res.returncode == exit_codes.OK, res.stderr
    doc = json.loads(res.stdout)
    cheat = providers[3].address
    assert [s["faulty"] for s in doc["steps"]] == [[cheat]] * STEPS
    assert len(doc["disputes"]) == STEPS
    for d in doc["disputes"]:
        assert d["dishonest"] == [cheat] and d["honest"] == [providers[2].address]
        assert d["reasons"] == ["recomputed_operator"] and all(d["dispute_ids"])
    assert doc["final_state"] == _reference_digest(coded_cluster["job"])
    assert (tmp_path / "params.safetensors").stat().st_size > 0
    # the arbiter kept the disputes: visible through `verde disputes list`
    listed = run_verde(["disputes", "list", "--arbiter", coded_cluster["arb"].address,
                        "--json"])
    assert listed.returncode == exit_codes.OK, listed.stderr
    ids = {d["dispute_id"] for d in json.loads(listed.stdout)}
    assert {i for d in doc["disputes"] for i in d["dispute_ids"]} <= ids


def test_fractional_coding_over_honest_providers_matches_the_reference(
        coded_cluster: dict[str, Any]) -> None:
    honest = coded_cluster["providers"][:2]
    args = ["train-coded", str(coded_cluster["job"]), "--json",
            "--provider", honest[0].address, "--provider", honest[1].address]
    res = run_verde(args)
    assert res.returncode == exit_codes.OK, res.stderr
    doc = json.loads(res.stdout)
    assert doc["partitions"] == 2 and doc["disputes"] == []
    assert doc["final_state"] == _reference_digest(coded_cluster["job"])


def test_bad_provider_lists_are_one_line(coded_cluster: dict[str, Any]) -> None:
    args = ["train-coded", str(coded_cluster["job"]), "--stragglers", "1", "--json"]
    for svc in coded_cluster["providers"][:3]:
        args += ["--provider", svc.address]
    # three providers cannot form groups of s + 1 = 2: one clear line, nothing run
    assert_one_error_line(run_verde(args), exit_codes.BAD_INPUT, "divide")
    args = ["train-coded", str(coded_cluster["job"]), "--stragglers", "1", "--json"]
    for svc in coded_cluster["providers"][:3]:
        args += ["--provider", svc.address]
    args += ["--provider", coded_cluster["providers"][0].address]
    assert_one_error_line(run_verde(args), exit_codes.BAD_INPUT, "distinct")


def test_too_few_replicas_for_the_fault_budget_is_one_line(tmp_path: Path) -> None:
    job = job_toml(tmp_path / "job.toml", seed=1)
    res = run_verde(["train-coded", str(job), "--code", "replicated", "--replication", "2",
                     "--byzantine", "1", "--provider", "127.0.0.1:1", "--provider",
                     "127.0.0.1:2"])
    assert_one_error_line(res, exit_codes.BAD_INPUT, "2f+s+1")


def test_uploads_over_the_providers_limit_are_refused(coded_cluster: dict[str, Any]) -> None:
    import grpc
    import torch

    from arbiter.provider_client import GrpcProviderPeer
    from verde.protocol.peers.state import state_to_blobs

    peer = GrpcProviderPeer(coded_cluster["providers"][0].address)
    try:
        small = {"param/w": torch.ones(1000)}
        assert len(peer.put_state(state_to_blobs(small))) == 64
        with pytest.raises(Exception) as info:
            peer.put_state(state_to_blobs({"param/w": torch.ones(1 << 20)}))  # 4 MiB
        assert getattr(info.value, "code", None) is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        peer.close()
