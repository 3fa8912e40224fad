"""``verde delegate`` end to end: three provider processes (one cheating) and an arbiter process.

Everything goes through the installed ``verde`` command on 127.0.0.1 with OS-chosen ports:
the honest providers and the honest result come back with exit 0, the decided dispute is
visible through ``verde disputes``, and every kind of bad input ends as ONE ``verde: error:``
line with the documented exit code (cli/exit_codes.py), never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from cli import exit_codes
from tests.e2e.procs import Cluster, assert_one_error_line, job_toml, run_verde

FAULT = "compute=corrupt_op,step=5"
STEPS = 8


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("delegate-cli"))
    try:
        p1, p2, p3, arb = cluster.start_three_providers_and_arbiter(FAULT)
        job = job_toml(cluster.workdir / "job.toml", seed=7, steps=STEPS, batch_size=8)
        out = cluster.workdir / "out"
        res = run_verde(["delegate", str(job), "--provider", p1.address, "--provider",
                         p2.address, "--provider", p3.address, "--arbiter", arb.address,
                         "--out", str(out), "--json"])
        yield {"cluster": cluster, "p": (p1, p2, p3), "arb": arb, "job": job, "out": out,
               "delegation": res}
    finally:
        cluster.stop_all()


def _delegation(ctx: dict[str, Any]) -> dict[str, Any]:
    res = ctx["delegation"]
    assert res.returncode == exit_codes.OK, res.stderr
    assert "Traceback" not in res.stderr
    return dict(json.loads(res.stdout))


def test_delegate_returns_the_honest_providers_and_result(cli_cluster: dict[str, Any]) -> None:
    doc = _delegation(cli_cluster)
    p1, p2, p3 = cli_cluster["p"]
    cluster: Cluster = cli_cluster["cluster"]
    assert sorted(doc["honest_providers"]) == sorted([p1.address, p2.address])
    assert doc["dishonest_providers"] == [p3.address]
    assert len(doc["disputes"]) == 1
    dispute = doc["disputes"][0]
    assert dispute["winner"] in (p1.address, p2.address)
    assert p3.address in dispute["between"]
    cheat_side = "a" if dispute["between"][0] == p3.address else "b"
    assert dispute["verdict"]["losers"] == [cheat_side]
    assert dispute["verdict"]["keys"][cheat_side] == cluster.public_key("p3")
    # The returned result is signed by an honest provider and equals what the other honest
    # provider computed (bit-identical training under repops), and differs from the cheater's.
    result = doc["result"]
    assert result["signer"] in (cluster.public_key("p1"), cluster.public_key("p2"))
    from arbiter.provider_client import GrpcProviderPeer

    finals = {}
    for svc in (p1, p2, p3):
        peer = GrpcProviderPeer(svc.address)
        try:
            finals[svc.name] = peer.result(doc["job_id"]).payload["final_state"]
        finally:
            peer.close()
    assert result["payload"]["final_state"] == finals["p1"] == finals["p2"]
    assert finals["p3"] != finals["p1"]
    saved = json.loads((cli_cluster["out"] / "result.json").read_text())
    assert saved == result
    # The trained parameters came back under their names, equal to an honest provider's.
    from safetensors.torch import load_file

    from verde.protocol.jobs.context import PARAM

    assert {"model.safetensors", "job.json", "result.json"} <= set(doc["files"])
    weights = load_file(str(cli_cluster["out"] / "model.safetensors"))
    peer = GrpcProviderPeer(p1.address)
    try:
        entries = peer.fetch_state(doc["job_id"], [PARAM + n for n in weights])
    finally:
        peer.close()
    from verde.protocol.peers.state import blobs_to_state

    honest = blobs_to_state(entries.blobs)
    assert all(torch.equal(weights[n], honest[PARAM + n]) for n in weights)


def test_delegate_between_agreeing_providers_needs_no_dispute(
        cli_cluster: dict[str, Any]) -> None:
    p1, p2, _ = cli_cluster["p"]
    res = run_verde(["delegate", str(cli_cluster["job"]), "--provider", p1.address,
                     "--provider", p2.address, "--json"])
    assert res.returncode == exit_codes.OK, res.stderr
    doc = json.loads(res.stdout)
    assert doc["disputes"] == [] and doc["dishonest_providers"] == []
    assert doc["result"] == _delegation(cli_cluster)["result"]


def test_delegate_disagreement_without_an_arbiter_is_one_error_line(
        cli_cluster: dict[str, Any]) -> None:
    p1, _, p3 = cli_cluster["p"]
    res = run_verde(["delegate", str(cli_cluster["job"]), "--provider", p1.address,
                     "--provider", p3.address, "--json"])
    assert_one_error_line(res, exit_codes.BAD_INPUT, "no arbiter")


def test_disputes_list_and_show_the_decided_dispute(cli_cluster: dict[str, Any]) -> None:
    doc = _delegation(cli_cluster)
    did = doc["disputes"][0]["dispute_id"]
    arb = cli_cluster["arb"]
    listed = run_verde(["disputes", "list", "--arbiter", arb.address, "--json"])
    assert listed.returncode == exit_codes.OK, listed.stderr
    rows = {r["dispute_id"]: r for r in json.loads(listed.stdout)}
    assert rows[did]["status"] == "decided" and rows[did]["job_id"] == doc["job_id"]
    assert rows[did]["winner"] == doc["disputes"][0]["verdict"]["winner"]
    assert rows[did]["rounds"] > 0
    decided_only = run_verde(["disputes", "list", "--arbiter", arb.address, "--status",
                              "failed", "--json"])
    assert decided_only.returncode == exit_codes.OK, decided_only.stderr
    assert did not in {r["dispute_id"] for r in json.loads(decided_only.stdout)}
    shown = run_verde(["disputes", "show", did, "--arbiter", arb.address, "--json"])
    assert shown.returncode == exit_codes.OK, shown.stderr
    one = json.loads(shown.stdout)
    assert one["status"] == "decided" and one["error"] is None
    assert one["verdict"] == doc["disputes"][0]["verdict"]


def test_disputes_show_unknown_id_is_one_error_line(cli_cluster: dict[str, Any]) -> None:
    res = run_verde(["disputes", "show", "ab" * 32, "--arbiter", cli_cluster["arb"].address])
    assert_one_error_line(res, exit_codes.BAD_INPUT, "unknown dispute")


def test_jobs_status_reports_the_finished_job(cli_cluster: dict[str, Any]) -> None:
    doc = _delegation(cli_cluster)
    p1 = cli_cluster["p"][0]
    res = run_verde(["jobs", "status", doc["job_id"], "--provider", p1.address, "--json"])
    assert res.returncode == exit_codes.OK, res.stderr
    st = json.loads(res.stdout)
    assert st["state"] == "done" and st["steps_done"] == st["steps_total"] == STEPS
    unknown = run_verde(["jobs", "status", "cd" * 32, "--provider", p1.address])
    assert_one_error_line(unknown, exit_codes.BAD_INPUT, "no job")


# -- bad input through the CLI: one line, documented code, no traceback -------------------

def test_unreadable_job_file(cli_cluster: dict[str, Any], tmp_path: Path) -> None:
    p1 = cli_cluster["p"][0]
    res = run_verde(["delegate", str(tmp_path / "missing.toml"), "--provider", p1.address])
    assert_one_error_line(res, exit_codes.BAD_INPUT, "missing.toml")
    garbled = tmp_path / "garbled.toml"
    garbled.write_text("program = [unclosed\n")
    res = run_verde(["delegate", str(garbled), "--provider", p1.address])
    assert_one_error_line(res, exit_codes.BAD_INPUT, "TOML")


def test_unknown_program(cli_cluster: dict[str, Any], tmp_path: Path) -> None:
    p1 = cli_cluster["p"][0]
    job = job_toml(tmp_path / "job.toml", seed=1, steps=2, program="no_such_program")
    res = run_verde(["delegate", str(job), "--provider", p1.address])
    assert_one_error_line(res, exit_codes.BAD_INPUT, "no_such_program")


def test_unreachable_provider_and_arbiter(cli_cluster: dict[str, Any], tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    job = job_toml(tmp_path / "job.toml", seed=1, steps=2)
    res = run_verde(["delegate", str(job), "--provider", dead])
    assert_one_error_line(res, exit_codes.UNREACHABLE, dead)
    res = run_verde(["disputes", "list", "--arbiter", dead])
    assert_one_error_line(res, exit_codes.UNREACHABLE, dead)


def test_wrong_key_files(cli_cluster: dict[str, Any], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a key\n")
    for argv in (["provider", "serve", "--key", str(garbage), "--listen", "127.0.0.1:0"],
                 ["arbiter", "serve", "--key", str(garbage), "--listen", "127.0.0.1:0",
                  "--db", f"sqlite:///{tmp_path / 'a.db'}"],
                 ["provider", "serve", "--key", str(tmp_path / "absent.pem"), "--listen",
                  "127.0.0.1:0"],
                 ["keys", "show", str(garbage)]):
        res = run_verde(argv, timeout_s=300)
        line = assert_one_error_line(res, exit_codes.BAD_INPUT)
        assert "garbage.pem" in line or "absent.pem" in line, line


def test_bad_fault_plan_and_database_url(cli_cluster: dict[str, Any], tmp_path: Path) -> None:
    cluster: Cluster = cli_cluster["cluster"]
    res = run_verde(cluster.provider_argv("p1", "compute=no_such_fault"))
    assert_one_error_line(res, exit_codes.BAD_INPUT, "no_such_fault")
    res = run_verde(cluster.arbiter_argv("arb", "notadb://what"))
    assert_one_error_line(res, exit_codes.BAD_INPUT, "notadb")


# -- verdict certificates ------------------------------------------------------------------

def _certificates(ctx: dict[str, Any]) -> list[Path]:
    _delegation(ctx)
    certs = sorted(Path(ctx["out"]).glob("verdict-*.json"))
    if not certs:
        pytest.skip("the arbiter issued no verdict certificate (verde.protocol.dispute.certificate "
                    "absent in this version)")
    return certs


def test_verdict_certificates_verify_offline(cli_cluster: dict[str, Any]) -> None:
    from verde.protocol.dispute.verify import verify_verdict_certificate

    certs = _certificates(cli_cluster)
    cluster: Cluster = cli_cluster["cluster"]
    arbiter_key = cluster.public_key("arb")
    for cert in certs:
        checked = verify_verdict_certificate(cert, trusted_arbiters=[arbiter_key])
        assert checked.winner in (cluster.public_key("p1"), cluster.public_key("p2"))
        assert list(checked.losers.values()) == [cluster.public_key("p3")]


def test_tampered_verdict_certificate_is_rejected(cli_cluster: dict[str, Any],
                                                  tmp_path: Path) -> None:
    from proofs import ProofError
    from verde.protocol.dispute.verify import verify_verdict_certificate

    cert = json.loads(_certificates(cli_cluster)[0].read_text())
    text = json.dumps(cert, sort_keys=True)
    cluster: Cluster = cli_cluster["cluster"]
    p1, p3 = cluster.public_key("p1"), cluster.public_key("p3")
    assert p3 in text
    tampered = json.loads(text.replace(p3, p1))  # claim the cheater's key was someone else's
    with pytest.raises(ProofError):
        verify_verdict_certificate(tampered)
    with pytest.raises(ProofError):  # a genuine certificate from an arbiter we do not trust
        verify_verdict_certificate(cert, trusted_arbiters=[p1])


def _verify_cli_or_skip() -> None:
    res = run_verde(["verify", "--help"], timeout_s=300)
    if res.returncode != exit_codes.OK:
        pytest.skip("`verde verify` is not in this CLI yet (the protocol engineer is adding "
                    "it); certificates are checked through verde.protocol.dispute.verify above")


def test_verde_verify_accepts_certificates_and_rejects_a_tampered_copy(
        cli_cluster: dict[str, Any], tmp_path: Path) -> None:
    certs = _certificates(cli_cluster)
    _verify_cli_or_skip()
    for cert in certs:
        ok = run_verde(["verify", str(cert)])
        assert ok.returncode == exit_codes.OK, ok.stderr
    text = certs[0].read_text()
    cluster: Cluster = cli_cluster["cluster"]
    bad = tmp_path / "tampered.json"
    bad.write_text(text.replace(cluster.public_key("p3"), cluster.public_key("p1")))
    res = run_verde(["verify", str(bad)])
    assert_one_error_line(res, exit_codes.FALSE)
