"""Committee verdicts: silence attested by k of n arbiters, verdicts co-signed with BLS, and
offline verification that rejects tampering and short committees."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from proofs import bls
from proofs.certificate import attach_committee
from proofs.errors import ProofError
from verde.protocol.dispute.certificate import issue_verdict_certificate
from verde.protocol.dispute.committee import Committee, CommitteeError, CommitteeMember
from verde.protocol.dispute.driver import run_dispute
from verde.protocol.dispute.errors import InvalidEvent, InvalidVerdictCertificate
from verde.protocol.dispute.state import DisputeState
from verde.protocol.dispute.verify import check_and_cosign, verify_verdict_certificate
from verde.protocol.dispute.witness import DisputeStalled, PeerWitness
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.peers import LocalPeer
from verde.protocol.peers.endpoints import sign_endpoint
from verde.protocol.peers.errors import PeerTimeout
from verde.protocol.peers.messages import Answer, Query
from verde.protocol.provider.provider import Provider

from .conftest import key, tiny_spec

pytestmark = pytest.mark.slow  # BLS in pure Python: about a second per pairing

HONEST, CHEATER = "127.0.0.1:7101", "127.0.0.1:7102"


@pytest.fixture(scope="module")
def members() -> list[bls.BlsSecretKey]:
    return [bls.keygen(bytes([40 + i]) * 32) for i in range(3)]


@pytest.fixture(scope="module")
def committee(members: list[bls.BlsSecretKey]) -> Committee:
    return Committee(tuple(CommitteeMember.from_key(k) for k in members), threshold=2)


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    spec = tiny_spec(steps=6, checkpoint_interval=3)
    honest = Provider(key("c-honest"), "honest")
    cheater = CheatingProvider(key("c-cheater"), "cheater",
                               plan=FaultPlan("corrupt_op", step=4, answer="refuse"))
    honest.submit(spec)
    cheater.submit(spec)
    return {"spec": spec, "honest": honest, "cheater": cheater,
            "peers": {HONEST: LocalPeer(honest), CHEATER: LocalPeer(cheater)},
            "endpoints": {"a": sign_endpoint(honest.key, HONEST),
                          "b": sign_endpoint(cheater.key, CHEATER)}}


class Unreachable:
    """The arbiter's own connection to a party, cut: every query times out."""

    def __init__(self, peer: LocalPeer) -> None:
        self.peer = peer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.peer, name)

    def answer(self, query: Query) -> Answer:
        raise PeerTimeout("the arbiter's link to this party is down")


def _dispute(setup: dict[str, Any], committee: Committee, witnesses: list[PeerWitness],
             peers: Mapping[str, Any] | None = None) -> DisputeState:
    spec = setup["spec"]
    peers = peers or {"a": setup["peers"][HONEST], "b": setup["peers"][CHEATER]}
    state = DisputeState(spec, setup["honest"].result(spec.job_id),
                         setup["cheater"].result(spec.job_id), committee=committee)
    run_dispute(state, peers, endpoints=setup["endpoints"], witnesses=witnesses)
    return state


def _witnesses(setup: dict[str, Any], keys: list[bls.BlsSecretKey]) -> list[PeerWitness]:
    return [PeerWitness(k, setup["peers"].__getitem__) for k in keys]


def test_a_silence_attested_by_the_committee_condemns_and_the_verdict_verifies(
        setup: dict[str, Any], committee: Committee, members: list[bls.BlsSecretKey]) -> None:
    state = _dispute(setup, committee, _witnesses(setup, members))
    verdict = state.verdict
    assert verdict is not None and verdict.winner == "a" and verdict.losers == ("b",)
    assert verdict.faults["b"]["code"] == "missed_deadline"
    timeout = next(e for e in state.transcript if e["type"] == "timeout")
    assert len(timeout["attestation"]["signers"]) >= committee.threshold
    cert = issue_verdict_certificate(state, key("c-arbiter"))
    partials = {k.public_key: check_and_cosign(k, cert) for k in members[:2]}
    from verde.protocol.dispute.committee import attach_cosignatures

    signed = attach_cosignatures(cert, committee, partials)
    checked = verify_verdict_certificate(signed, trusted_committee=committee)
    assert checked.winner == setup["honest"].identity.hex()
    assert len(checked.committee_signers) == 2
    # negatives: without co-signatures, with one, or with a tampered field
    with pytest.raises(CommitteeError, match="co-signed"):
        verify_verdict_certificate(cert)
    one = members[0]
    short = attach_committee(cert, [(one.public_key, bls.prove_possession(one))],
                             partials[one.public_key])
    with pytest.raises(CommitteeError, match="threshold"):
        verify_verdict_certificate(short)
    for path in (("body", "verdict", "winner"), ("body", "dispute_id"), ("signer",)):
        tampered = copy.deepcopy(signed)
        node = tampered
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = "b" if path[-1] == "winner" else "00" * 32
        with pytest.raises((ProofError, InvalidVerdictCertificate, CommitteeError)):
            verify_verdict_certificate(tampered)


def test_a_party_the_committee_reaches_does_not_lose_for_the_arbiters_broken_link(
        setup: dict[str, Any], committee: Committee, members: list[bls.BlsSecretKey]) -> None:
    peers = {"a": Unreachable(setup["peers"][HONEST]), "b": setup["peers"][CHEATER]}
    state = _dispute(setup, committee, _witnesses(setup, members), peers)
    assert state.verdict is not None and state.verdict.winner == "a"


def test_without_enough_witnesses_the_dispute_stalls_instead_of_condemning(
        setup: dict[str, Any], committee: Committee, members: list[bls.BlsSecretKey]) -> None:
    with pytest.raises(DisputeStalled, match="could not attest"):
        _dispute(setup, committee, _witnesses(setup, members[:1]))


def test_a_timeout_without_an_attestation_is_refused(setup: dict[str, Any],
                                                     committee: Committee) -> None:
    spec = setup["spec"]
    state = DisputeState(spec, setup["honest"].result(spec.job_id),
                         setup["cheater"].result(spec.job_id), committee=committee)
    with pytest.raises(InvalidEvent, match="endpoint record"):
        state.apply({"type": "timeout", "party": "a", "round": 1})
    with pytest.raises(InvalidEvent, match="attestation"):
        state.apply({"type": "timeout", "party": "a", "round": 1,
                     "endpoint": setup["endpoints"]["a"].to_json()})
    assert not state.done


def test_committee_arguments_are_checked(members: list[bls.BlsSecretKey]) -> None:
    one = CommitteeMember.from_key(members[0])
    with pytest.raises(CommitteeError, match="threshold"):
        Committee((one,), threshold=2)
    with pytest.raises(CommitteeError, match="distinct"):
        Committee((one, one), threshold=1)
    with pytest.raises(CommitteeError, match="malformed"):
        Committee.from_json({"members": [{"public_key": "zz"}], "threshold": 1})
