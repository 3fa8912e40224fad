"""``verde provider serve --workers 4`` end to end: a provider computing each step's partitions
on four worker processes commits to the states one process computes, and the arbiter process
decides its dispute with a one-worker cheater for it."""

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
    try:
        w4, cheat, arb = cluster.start_many([
            ("w4", [*cluster.provider_argv("w4"), "--workers", "4"]),
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
    finally:
        cluster.stop_all()
    # one process, in this test, computes the same final state as the four workers did
    spec = load_job_spec(job)
    here = Provider(SigningKey.from_seed(b"\7" * 32), "here")
    here.submit(spec)
    assert doc["result"]["payload"]["final_state"] == \
        here.result(spec.job_id).payload["final_state"]


def test_a_bad_worker_count_is_a_usage_error(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    for bad in ("0", "257", "two"):
        res = run_verde([*cluster.provider_argv("p"), "--workers", bad])
        assert res.returncode == exit_codes.USAGE, res.stderr
        assert "Invalid value for '--workers'" in res.stderr and "Traceback" not in res.stderr
