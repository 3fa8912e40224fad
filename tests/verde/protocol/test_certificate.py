"""Verdict certificates: accepted when issued, rejected after any single field is changed."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import pytest

from proofs import issue_certificate
from proofs.errors import ProofError
from verde.protocol.dispute.certificate import certificate_body
from verde.protocol.dispute.driver import run_dispute
from verde.protocol.dispute.errors import InvalidVerdictCertificate
from verde.protocol.dispute.state import DisputeState
from verde.protocol.dispute.verify import verify_verdict_certificate
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.peers import LocalPeer

from .conftest import key

ARBITER = key("arbiter")


def _certificate(spec, honest, plan: FaultPlan, *, bundle: bool = True) -> dict[str, Any]:
    cheater = CheatingProvider(key("cert-cheater"), plan=plan)
    cheater.submit(spec)
    peers = {"a": LocalPeer(honest), "b": LocalPeer(cheater)}
    state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    run_dispute(state, peers, retransmit=True)
    return issue_certificate("verde.dispute-verdict",
                             certificate_body(state, bundle_inputs=bundle), ARBITER)


@pytest.fixture(scope="module")
def certificates(spec, honest) -> dict[str, dict[str, Any]]:
    return {
        "operator": _certificate(spec, honest, FaultPlan("corrupt_op", step=5, node=1)),
        "commit": _certificate(spec, honest, FaultPlan("corrupt_op", step=5, node=1,
                                                        answer="wrong_graph_count")),
        "equivocation": _certificate(spec, honest, FaultPlan("corrupt_op", step=3, node=1,
                                                              answer="equivocate")),
        "unbundled": _certificate(spec, honest, FaultPlan("corrupt_op", step=5, node=1),
                                  bundle=False),
    }


def _paths(obj: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*path, i))


def _tampered(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 1
    if isinstance(value, str):
        if value and all(c in "0123456789abcdef" for c in value):
            return ("1" if value[0] == "0" else "0") + value[1:]
        return value + "x"
    if value is None:
        return "x"
    if isinstance(value, list):
        return [*value, 0]
    return {**value, "extra": 1}


def _set(doc: Any, path: tuple, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    if not path:
        return value
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return doc


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def test_issued_certificates_verify(certificates) -> None:
    for name, cert in certificates.items():
        checked = verify_verdict_certificate(cert, trusted_arbiters=[ARBITER.public_key])
        assert checked.winner == certificates[name]["body"]["results"]["a"]["signer"], name
        assert checked.losers


def test_untrusted_arbiter_is_rejected(certificates) -> None:
    with pytest.raises(ProofError):
        verify_verdict_certificate(certificates["operator"], trusted_arbiters=[key("x").public_key])


@pytest.mark.parametrize("name", ["operator", "commit", "equivocation", "unbundled"])
def test_any_single_changed_field_is_rejected(certificates, name: str) -> None:
    cert = certificates[name]
    paths = list(_paths(cert))
    assert len(paths) > 100
    for path in paths:
        bad = _set(cert, path, _tampered(_get(cert, path)))
        with pytest.raises((ProofError, InvalidVerdictCertificate, ValueError)):
            verify_verdict_certificate(bad, recompute=False)


def _leaf_paths(body: Any) -> list[tuple]:
    return [p for p in _paths(body) if p and not isinstance(_get(body, p), dict | list)]


def _check_resigned(body: Any, paths: list[tuple]) -> None:
    for path in paths:
        bad_body = _set(body, path, _tampered(_get(body, path)))
        bad = issue_certificate("verde.dispute-verdict", bad_body, ARBITER)
        with pytest.raises((ProofError, InvalidVerdictCertificate, ValueError)):
            verify_verdict_certificate(bad)


@pytest.mark.parametrize("name", ["operator", "equivocation", "commit"])
def test_resigned_semantic_tampering_is_rejected_by_the_replay(certificates, name: str) -> None:
    """Even the arbiter itself cannot sign a body that does not replay to its verdict: every
    field outside the transcript, and a seeded sample of transcript fields."""
    body = certificates[name]["body"]
    paths = _leaf_paths(body)
    outside = [p for p in paths if p[0] != "transcript"]
    inside = [p for p in paths if p[0] == "transcript"]
    sample = random.Random(7).sample(inside, min(25, len(inside)))
    _check_resigned(body, outside + sample)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["operator", "equivocation", "commit", "unbundled"])
def test_resigned_tampering_of_every_field_is_rejected(certificates, name: str) -> None:
    body = certificates[name]["body"]
    _check_resigned(body, _leaf_paths(body))


def test_bundled_inputs_are_recomputed(certificates) -> None:
    body = copy.deepcopy(certificates["operator"]["body"])
    last = body["transcript"][-1]
    key_ = next(iter(last["blobs"]))
    blob = last["blobs"][key_]
    import base64

    raw = bytearray(base64.b64decode(blob["data"]))
    raw[0] ^= 1
    blob["data"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises((ProofError, InvalidVerdictCertificate)):
        verify_verdict_certificate(issue_certificate("verde.dispute-verdict", body, ARBITER))
