"""An arbiter's committee seat over gRPC: the committee file, ``Witness`` and ``CoSign``.

In process (one real gRPC server on 127.0.0.1 per test module); the three-arbiter dispute runs
in tests/e2e/test_committee.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from arbiter.arbiter_app import start_arbiter
from arbiter.arbiter_client import ArbiterClient
from arbiter.committee import CommitteeFileError, CommitteeRoster
from arbiter.committee_client import GrpcCommitteeMember
from arbiter.errors import ArbiterInputError
from arbiter.proto import verde_pb2 as pb
from arbiter.provider_app import start_provider
from proofs import MessageContext, SigningKey, bls
from proofs.bls_keys import save_bls_key
from tests.e2e.procs import free_ports
from verde.protocol.dispute.committee import CommitteeMember, SilenceStatement
from verde.protocol.dispute.verify import verify_verdict_certificate
from verde.protocol.peers.endpoints import sign_endpoint
from verde.protocol.peers.messages import Query

from .conftest import CHEAT, SPEC, key_file, signed_results

KEYS = [bls.keygen(bytes([90 + i]) * 32) for i in range(3)]


def _entry(key: bls.BlsSecretKey, port: int) -> dict[str, str]:
    return {"address": f"127.0.0.1:{port}", "public_key": key.public_key.hex(),
            "pop": bls.prove_possession(key).hex()}


def _roster(threshold: int = 2) -> dict[str, Any]:
    return {"threshold": threshold, "members": [_entry(k, 7100 + i) for i, k in enumerate(KEYS)]}


def test_a_committee_file_reads_as_json_or_toml(tmp_path: Path) -> None:
    doc = _roster()
    (tmp_path / "c.json").write_text(json.dumps(doc))
    roster = CommitteeRoster.load(tmp_path / "c.json")
    assert roster.committee.threshold == 2 and len(roster.committee.members) == 3
    assert roster.to_json() == doc
    toml = [f"threshold = {doc['threshold']}"]
    for m in doc["members"]:
        toml += ["[[members]]"] + [f'{k} = "{v}"' for k, v in m.items()]
    (tmp_path / "c.toml").write_text("\n".join(toml) + "\n")
    assert CommitteeRoster.load(tmp_path / "c.toml") == roster


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(threshold=4), "threshold in"),
    (lambda d: d.update(threshold="2"), "threshold must be an integer"),
    (lambda d: d.update(extra=1), "exactly the fields"),
    (lambda d: d["members"][0].pop("address"), r"members\[0\] needs exactly"),
    (lambda d: d["members"][1].update(address="nowhere"), r"members\[1\]"),
    (lambda d: d["members"][0].update(pop=d["members"][1]["pop"]), "proof of possession"),
    (lambda d: d["members"].append(dict(d["members"][0])), "distinct"),
])
def test_a_bad_committee_file_is_one_clear_error(tmp_path: Path, mutate: Any, match: str) -> None:
    doc = _roster()
    mutate(doc)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(CommitteeFileError, match=match):
        CommitteeRoster.load(path)
    path.write_text("{")
    with pytest.raises(CommitteeFileError, match="not valid JSON"):
        CommitteeRoster.load(path)


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An arbiter on a one-member committee (itself; threshold 1), deadline 1 s."""
    tmp = tmp_path_factory.mktemp("committee-seat")
    save_bls_key(KEYS[0], tmp / "m.bls")
    (tmp / "c.json").write_text(json.dumps({"threshold": 1, "members": [_entry(KEYS[0], 1)]}))
    arb = start_arbiter(key_file(tmp, "seat-arbiter"), "127.0.0.1:0",
                        f"sqlite:///{tmp / 'a.db'}", workers=1, deadline_s=1.0, lease_s=5.0,
                        committee=tmp / "c.json", bls_key=tmp / "m.bls")
    address = f"127.0.0.1:{arb.port}"
    client = GrpcCommitteeMember(address, CommitteeMember.from_key(KEYS[0]))
    try:
        yield {"tmp": tmp, "address": address, "client": client}
    finally:
        client.close()
        arb.shutdown()


def _query_and_statement(address: str) -> tuple[Query, SilenceStatement]:
    query = Query("job", "dispute", 3, "node_inputs", {}, "a", 1.0)
    return query, SilenceStatement(query.context, "ab" * 32, address, int(time.time()))


def test_a_member_witnesses_silence_at_an_address_where_nothing_answers(
        member: dict[str, Any]) -> None:
    query, statement = _query_and_statement("127.0.0.1:1")
    seen = member["client"].observe(statement, query)  # checks the signature itself
    assert isinstance(seen, bytes)
    bls.verify_signature(KEYS[0].public_key, statement.message(), seen)


def test_witness_requests_are_checked(member: dict[str, Any]) -> None:
    query, statement = _query_and_statement("127.0.0.1:1")
    with ArbiterClient(member["address"]) as client:
        with pytest.raises(grpc.RpcError) as err:
            list(client.stub.Witness(pb.WitnessRequest(statement_json="{}",
                                                       query_json="{}"), timeout=30))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        other = SilenceStatement(MessageContext("job", "dispute", 4, "node_inputs"),
                                 statement.party_key, statement.address, statement.observed_at)
        request = pb.WitnessRequest(statement_json=json.dumps(other.to_json()),
                                    query_json=json.dumps(query.to_json()))
        with pytest.raises(grpc.RpcError) as err:
            list(client.stub.Witness(request, timeout=30))
        assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "another query" in err.value.details()


def test_a_member_refuses_to_cosign_what_is_not_its_committees(member: dict[str, Any]) -> None:
    with ArbiterClient(member["address"]) as client:
        for cert in ({"body": {"verdict": {}}}, {"format": "verde-certificate"}):
            with pytest.raises(grpc.RpcError) as err:
                client.stub.CoSign(pb.CertificateReply(certificate_json=json.dumps(cert)),
                                   timeout=30)
            assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert "not run by this member's committee" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            client.stub.CoSign(pb.CertificateReply(certificate_json="[1"), timeout=30)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_an_arbiter_without_a_committee_neither_witnesses_nor_cosigns(tmp_path: Path) -> None:
    arb = start_arbiter(key_file(tmp_path, "lone"), "127.0.0.1:0",
                        f"sqlite:///{tmp_path / 'a.db'}", workers=1)
    try:
        with ArbiterClient(f"127.0.0.1:{arb.port}") as client:
            with pytest.raises(grpc.RpcError) as err:
                client.stub.CoSign(pb.CertificateReply(certificate_json="{}"), timeout=30)
            assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert "serves no committee" in err.value.details()
    finally:
        arb.shutdown()


def test_committee_settings_are_checked_at_start(member: dict[str, Any], tmp_path: Path) -> None:
    tmp = member["tmp"]
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with pytest.raises(CommitteeFileError, match="go together"):
        start_arbiter(key_file(tmp_path, "x"), "127.0.0.1:0", db, committee=tmp / "c.json")
    save_bls_key(KEYS[1], tmp_path / "stranger.bls")
    with pytest.raises(CommitteeFileError, match="not a member"):
        start_arbiter(key_file(tmp_path, "x"), "127.0.0.1:0", db, committee=tmp / "c.json",
                      bls_key=tmp_path / "stranger.bls")
    with pytest.raises(ArbiterInputError, match="two deadlines"):
        start_arbiter(key_file(tmp_path, "x"), "127.0.0.1:0", db, committee=tmp / "c.json",
                      bls_key=tmp / "m.bls", deadline_s=30.0, lease_s=60.0)


@pytest.mark.slow
def test_a_verdict_waits_until_the_threshold_of_members_cosigned_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    providers = {name: start_provider(key_file(tmp_path, name), "127.0.0.1:0", fault=fault)
                 for name, fault in (("honest", None), ("cheat", CHEAT))}
    addrs = {n: f"127.0.0.1:{p.port}" for n, p in providers.items()}
    ports = free_ports(3)
    roster = {"threshold": 2, "members": [_entry(k, p) for k, p in zip(KEYS, ports, strict=True)]}
    (tmp_path / "c.json").write_text(json.dumps(roster))
    for i, k in enumerate(KEYS):
        save_bls_key(k, tmp_path / f"m{i}.bls")
    arbiters = []

    def member(i: int) -> None:
        arbiters.append(start_arbiter(
            key_file(tmp_path, f"arb{i}"), f"127.0.0.1:{ports[i]}",
            f"sqlite:///{tmp_path / f'a{i}.db'}", workers=1, deadline_s=2.0, lease_s=30.0,
            committee=tmp_path / "c.json", bls_key=tmp_path / f"m{i}.bls"))

    try:
        results = signed_results(addrs)
        member(0)  # the leader alone: one co-signature of the two needed
        entries = [pb.ProviderEntry(
            address=addrs[n], signed_result_json=results[n],
            endpoint_json=json.dumps(sign_endpoint(
                SigningKey.load(tmp_path / f"{n}.pem"), addrs[n]).to_json()))
            for n in ("cheat", "honest")]
        with ArbiterClient(f"127.0.0.1:{ports[0]}") as client, \
                caplog.at_level(logging.WARNING, logger="verde.arbiter"):
            did = client.stub.OpenDispute(pb.OpenDisputeRequest(
                spec_json=json.dumps(SPEC), providers=entries), timeout=60).dispute_id
            end = time.monotonic() + 300
            while "co-signed the verdict, 2 must" not in caplog.text:
                assert time.monotonic() < end, caplog.text
                time.sleep(0.2)
            assert client.status(did).status == "running"  # no verdict: nobody decided
            with pytest.raises(Exception, match="no certificate"):
                client.certificate(did)
            member(1)  # a second member comes up: the retried verdict reaches the threshold
            assert client.wait(did, timeout_s=300, poll_s=0.5).status == "decided"
            cert = client.certificate(did)
        committee = CommitteeRoster.from_json(roster).committee
        checked = verify_verdict_certificate(cert, trusted_committee=committee, recompute=False)
        assert checked.winner == SigningKey.load(tmp_path / "honest.pem").public_key.hex()
        assert set(checked.committee_signers) == {KEYS[0].public_key.hex(),
                                                  KEYS[1].public_key.hex()}
    finally:
        for arb in arbiters:
            arb.shutdown()
        for running in providers.values():
            running.close(0)
