"""``verde provider serve --workers 2 --worker-at A --worker-at B`` end to end: a provider
computing each step's partitions on two worker processes of its own and two ``verde provider
worker`` processes (other machines, on 127.0.0.1 here) commits to the states one process
computes, and the arbiter process decides its dispute with a one-worker cheater for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import exit_codes
from proofs import SigningKey
from tests.e2e.procs import Cluster, run_verde
from verde.protocol.jobs.spec_file import load_job_spec
from verde.protocol.provider.provider import Provider

JOB = """program = "mlp"
steps = 4
batch_size = 8
partitions = 4
seed = 9
[dataset]
name = "digits"
[optimizer]
name = "adam"
lr = 0.01
"""


@pytest.mark.slow
def test_a_four_worker_provider_wins_against_a_one_worker_cheater(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    secret = tmp_path / "workers.secret"
    made = run_verde(["provider", "worker-secret", str(secret)])
    assert made.returncode == exit_codes.OK, made.stderr
    again = run_verde(["provider", "worker-secret", str(secret)])  # never overwritten
    assert again.returncode != exit_codes.OK and "exists" in again.stderr
    try:
        remote = cluster.start_many([
            (f"remote{i}", ["provider", "worker", "--listen", "127.0.0.1:0",
                            "--worker-secret", str(secret)]) for i in (1, 2)])
        at = [arg for r in remote for arg in ("--worker-at", r.address)]
        w4, cheat, arb = cluster.start_many([
            ("w4", [*cluster.provider_argv("w4"), "--workers", "2", *at,
                    "--worker-secret", str(secret)]),
            ("cheat", cluster.provider_argv("cheat", "compute=corrupt_op,step=3")),
            ("arb", cluster.arbiter_argv("arb", f"sqlite:///{tmp_path / 'arb.db'}")),
        ])
        job = tmp_path / "job.toml"
        job.write_text(JOB)
        res = run_verde(["delegate", str(job), "--provider", w4.address, "--provider",
                         cheat.address, "--arbiter", arb.address, "--out",
                         str(tmp_path / "out"), "--json"])
        assert res.returncode == exit_codes.OK, res.stderr
        doc = json.loads(res.stdout)
        assert doc["honest_providers"] == [w4.address]
        assert doc["dishonest_providers"] == [cheat.address]
        assert [d["winner"] for d in doc["disputes"]] == [w4.address]
        assert doc["result"]["signer"] == cluster.public_key("w4")
        for r in remote:  # the remote workers really computed partitions
            assert "provider at 127.0.0.1" in r.log() and "connected" in r.log()
    finally:
        cluster.stop_all()
    # one process, in this test, computes the same final state as the four workers did
    spec = load_job_spec(job)
    here = Provider(SigningKey.from_seed(b"\7" * 32), "here")
    here.submit(spec)
    assert doc["result"]["payload"]["final_state"] == \
        here.result(spec.job_id).payload["final_state"]


def test_remote_worker_settings_are_one_line_errors(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    res = run_verde([*cluster.provider_argv("p"), "--worker-at", "127.0.0.1:7100"])
    assert res.returncode != exit_codes.OK
    assert "--worker-at needs --worker-secret" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "bad.secret"
    bad.write_text("0123")
    res = run_verde(["provider", "worker", "--listen", "127.0.0.1:0", "--worker-secret",
                     str(bad)])
    assert res.returncode != exit_codes.OK
    assert "expected 64 hex digits" in res.stderr and "Traceback" not in res.stderr
    res = run_verde([*cluster.provider_argv("p"), "--worker-at", "nohost"])
    assert res.returncode == exit_codes.USAGE and "Traceback" not in res.stderr


def test_a_bad_worker_count_is_a_usage_error(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    for bad in ("0", "257", "two"):
        res = run_verde([*cluster.provider_argv("p"), "--workers", bad])
        assert res.returncode == exit_codes.USAGE, res.stderr
        assert "Invalid value for '--workers'" in res.stderr and "Traceback" not in res.stderr
