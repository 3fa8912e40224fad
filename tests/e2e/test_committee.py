"""Committee verdicts end to end: three ``verde arbiter serve --committee`` processes (k = 2 of 3),
three providers (honest, one corrupting an operator, one that also goes silent), real gRPC on
127.0.0.1.

The arbiter that drives a dispute asks the other members to witness a silence (``Witness``) and
to co-sign the verdict (``CoSign``); ``verde verify --committee`` accepts the co-signed
certificate and rejects it after any single-field tamper, with too few co-signers, or without
co-signatures; a member handed a certificate whose verdict the leader rewrote (and re-signed)
refuses to co-sign.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from cli import exit_codes
from tests.e2e.procs import Cluster, assert_one_error_line, free_ports, job_spec, run_verde

pytestmark = pytest.mark.slow  # five services, two disputes, BLS in pure Python

THRESHOLD = 2
MEMBERS = 3
CORRUPT = "compute=corrupt_op,step=5"
SILENT = "compute=corrupt_op,step=5,answer=refuse"


def _entries(cluster: Cluster, spec: dict[str, Any], names: list[str],
             addresses: dict[str, str]) -> list[Any]:
    """ProviderEntry messages: each provider's signed result and an endpoint record signed
    with its own key (what the provider vouches for)."""
    from arbiter.proto import verde_pb2 as pb
    from arbiter.provider_client import GrpcProviderPeer
    from proofs import SigningKey
    from verde.protocol.peers.endpoints import sign_endpoint

    entries = []
    for name in names:
        with GrpcProviderPeer(addresses[name]) as peer:
            job_id = peer.submit(spec)
            peer.wait(job_id, timeout_s=600)
            result = json.dumps(peer.result(job_id).to_json(), sort_keys=True)
        record = sign_endpoint(SigningKey.load(cluster.key(name)), addresses[name])
        entries.append(pb.ProviderEntry(address=addresses[name], signed_result_json=result,
                                        endpoint_json=json.dumps(record.to_json())))
    return entries


def _settle(leader: str, spec: dict[str, Any], entries: list[Any]) -> dict[str, Any]:
    from arbiter.arbiter_client import ArbiterClient
    from arbiter.codec import dump_json
    from arbiter.proto import verde_pb2 as pb

    with ArbiterClient(leader) as client:
        ref = client.stub.OpenDispute(pb.OpenDisputeRequest(spec_json=dump_json(spec),
                                                            providers=entries), timeout=60)
        status = client.wait(ref.dispute_id, timeout_s=600, poll_s=0.5)
        assert status.status == "decided", (status.status, status.error)
        return client.certificate(ref.dispute_id)


@pytest.fixture(scope="module")
def committee(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from proofs import bls
    from proofs.bls_keys import save_bls_key

    cluster = Cluster(tmp_path_factory.mktemp("committee"))
    work = cluster.workdir
    try:
        made = run_verde(["keys", "new", "--bls", "--json", str(work / "m0.bls")])
        assert made.returncode == 0, made.stderr
        members = [json.loads(made.stdout)]
        for i in range(1, MEMBERS):
            key = bls.keygen(bytes([70 + i]) * 32)
            save_bls_key(key, work / f"m{i}.bls")
            members.append({"public_key": key.public_key.hex(),
                            "pop": bls.prove_possession(key).hex()})
        ports = free_ports(MEMBERS)
        roster = {"threshold": THRESHOLD, "members": [
            {"address": f"127.0.0.1:{port}", "public_key": m["public_key"], "pop": m["pop"]}
            for port, m in zip(ports, members, strict=True)]}
        committee_file = work / "committee.json"
        committee_file.write_text(json.dumps(roster, indent=1))
        specs = [(f"arb{i}", ["arbiter", "serve", "--key", str(cluster.key(f"arb{i}")),
                              "--listen", f"127.0.0.1:{port}",
                              "--db", f"sqlite:///{work / f'arb{i}.db'}",
                              "--committee", str(committee_file),
                              "--bls-key", str(work / f"m{i}.bls"),
                              "--deadline", "4", "--lease", "60"])
                 for i, port in enumerate(ports)]
        specs += [("honest", cluster.provider_argv("honest")),
                  ("corrupt", cluster.provider_argv("corrupt", CORRUPT)),
                  ("silent", cluster.provider_argv("silent", SILENT))]
        services = {s.name: s for s in cluster.start_many(specs)}
        addresses = {name: svc.address for name, svc in services.items()}
        spec = job_spec(seed=11)
        with ThreadPoolExecutor(2) as pool:
            corrupt = pool.submit(lambda: _settle(addresses["arb0"], spec, _entries(
                cluster, spec, ["honest", "corrupt"], addresses)))
            silent = pool.submit(lambda: _settle(addresses["arb1"], spec, _entries(
                cluster, spec, ["honest", "silent"], addresses)))
            certs = {"corrupt": corrupt.result(), "silent": silent.result()}
        paths = {}
        for name, cert in certs.items():
            paths[name] = work / f"verdict-{name}.json"
            paths[name].write_text(json.dumps(cert))
        yield {"cluster": cluster, "addresses": addresses, "certs": certs, "paths": paths,
               "committee_file": committee_file, "roster": roster}
    finally:
        cluster.stop_all()


def _verify(ctx: dict[str, Any], path: Path, *extra: str) -> Any:
    return run_verde(["verify", "--committee", str(ctx["committee_file"]), str(path), *extra],
                     timeout_s=600)


def test_the_committee_settles_and_verde_verify_accepts_the_cosigned_verdict(
        committee: dict[str, Any]) -> None:
    cluster: Cluster = committee["cluster"]
    res = _verify(committee, committee["paths"]["corrupt"], "--json")
    assert res.returncode == exit_codes.OK, res.stderr
    doc = json.loads(res.stdout)
    assert doc["winner"] == cluster.public_key("honest")
    assert list(doc["losers"].values()) == [cluster.public_key("corrupt")]
    assert len(doc["committee_signers"]) >= THRESHOLD
    members = {m["public_key"] for m in committee["roster"]["members"]}
    assert set(doc["committee_signers"]) <= members


def test_a_silence_counts_only_with_the_committees_attestation(
        committee: dict[str, Any]) -> None:
    cluster: Cluster = committee["cluster"]
    cert = committee["certs"]["silent"]
    verdict = cert["body"]["verdict"]
    loser = verdict["losers"][0]
    assert verdict["faults"][loser]["code"] == "missed_deadline"
    timeouts = [e for e in cert["body"]["transcript"] if e["type"] == "timeout"]
    assert len(timeouts) == 1
    assert len(timeouts[0]["attestation"]["signers"]) >= THRESHOLD
    assert timeouts[0]["attestation"]["statement"]["address"] == \
        committee["addresses"]["silent"]
    res = _verify(committee, committee["paths"]["silent"], "--json", "--no-recompute")
    assert res.returncode == exit_codes.OK, res.stderr
    assert json.loads(res.stdout)["winner"] == cluster.public_key("honest")


def _set(path: tuple[Any, ...], value: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def tamper(doc: dict[str, Any]) -> None:
        node = doc
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value(node[path[-1]])
    return tamper


def _flip_hex(text: str) -> str:
    return ("1" if text[0] != "1" else "2") + text[1:]


TAMPERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "signer": _set(("signer",), _flip_hex),
    "signature": _set(("signature",), _flip_hex),
    "winner": _set(("body", "verdict", "winner"), lambda w: "b" if w == "a" else "a"),
    "reason": _set(("body", "verdict", "reason"), lambda r: r + "x"),
    "dispute_id": _set(("body", "dispute_id"), _flip_hex),
    "spec": _set(("body", "spec", "seed"), lambda s: s + 1),
    "transcript": _set(("body", "transcript", 0, "round"), lambda r: r + 1),
    "threshold": _set(("body", "committee", "threshold"), lambda t: 1),
    "aggregate": _set(("committee", "aggregate_signature"), _flip_hex),
    "member_pop": _set(("committee", "members", 0, "pop"), _flip_hex),
    "members": _set(("committee", "members"), lambda ms: ms[:-1]),
}


def test_verde_verify_rejects_every_single_field_tamper(committee: dict[str, Any],
                                                        tmp_path: Path) -> None:
    paths = {}
    for name, tamper in TAMPERS.items():
        doc = copy.deepcopy(committee["certs"]["corrupt"])
        tamper(doc)
        assert doc != committee["certs"]["corrupt"], name
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(doc))
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(paths, pool.map(
            lambda p: _verify(committee, p, "--no-recompute"), paths.values()), strict=True))
    for name, res in results.items():
        assert res.returncode == exit_codes.FALSE, (name, res.stderr)
        assert_one_error_line(res, exit_codes.FALSE)


def _cosign(address: str, certificate: dict[str, Any]) -> Any:
    from arbiter.arbiter_client import ArbiterClient
    from arbiter.proto import verde_pb2 as pb

    with ArbiterClient(address) as client:
        return client.stub.CoSign(pb.CertificateReply(
            certificate_json=json.dumps(certificate)), timeout=300)


def test_too_few_cosigners_or_none_are_rejected(committee: dict[str, Any],
                                                tmp_path: Path) -> None:
    from proofs.certificate import attach_committee

    cert = {k: v for k, v in committee["certs"]["corrupt"].items() if k != "committee"}
    one = _cosign(committee["addresses"]["arb2"], cert)
    short = attach_committee(cert, [(one.public_key, one.pop)], one.signature)
    (tmp_path / "short.json").write_text(json.dumps(short))
    (tmp_path / "none.json").write_text(json.dumps(cert))
    res = _verify(committee, tmp_path / "short.json", "--no-recompute")
    assert_one_error_line(res, exit_codes.FALSE, "threshold is 2")
    res = _verify(committee, tmp_path / "none.json", "--no-recompute")
    assert_one_error_line(res, exit_codes.FALSE, "co-signed")


def test_a_member_refuses_to_cosign_a_verdict_the_leader_rewrote(
        committee: dict[str, Any]) -> None:
    from proofs import SigningKey, issue_certificate

    cluster: Cluster = committee["cluster"]
    cert = committee["certs"]["corrupt"]
    body = copy.deepcopy(cert["body"])
    verdict = body["verdict"]
    verdict["winner"], verdict["losers"] = verdict["losers"][0], [verdict["winner"]]
    lie = issue_certificate(cert["kind"], body, SigningKey.load(cluster.key("arb0")))
    with pytest.raises(grpc.RpcError) as err:
        _cosign(committee["addresses"]["arb1"], lie)
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "does not co-sign" in err.value.details()
