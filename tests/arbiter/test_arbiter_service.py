"""Arbiter service on 127.0.0.1 with real providers over gRPC: the honest provider wins."""

from __future__ import annotations

import json

import grpc
import pytest

from proofs import SigningKey, canonical_json
from tests.arbiter.conftest import SPEC, signed_results


def _results(addrs: dict[str, str]) -> dict[str, str]:
    return signed_results(addrs, SPEC)


def test_dispute_over_grpc_is_won_by_the_honest_provider(cluster) -> None:  # type: ignore[no-untyped-def]
    addrs, client = cluster["addrs"], cluster["client"]
    results = _results(addrs)
    assert results["honest"] != results["cheat"]
    did = client.open_dispute(SPEC, [(addrs["cheat"], results["cheat"]),
                                     (addrs["honest"], results["honest"])])
    status = client.wait(did, timeout_s=300)
    assert status.status == "decided", status
    verdict = json.loads(status.verdict_json)
    assert verdict["winner"] == "b" and verdict["losers"] == ["a"], verdict
    honest_key = SigningKey.from_seed(b"honest".ljust(32, b"\0")).public_key.hex()
    assert verdict["keys"]["b"] == honest_key
    # Opening the same dispute again is idempotent and the list shows it once.
    again = client.open_dispute(SPEC, [(addrs["cheat"], results["cheat"]),
                                       (addrs["honest"], results["honest"])])
    assert again == did
    assert [d.dispute_id for d in client.list()].count(did) == 1


def test_equal_results_cannot_be_disputed(cluster) -> None:  # type: ignore[no-untyped-def]
    addrs, client = cluster["addrs"], cluster["client"]
    honest = _results({"honest": addrs["honest"]})["honest"]
    with pytest.raises(Exception, match="nothing to dispute") as info:
        client.open_dispute(SPEC, [(addrs["honest"], honest), (addrs["honest"], honest)])
    assert getattr(info.value, "code", None) in (grpc.StatusCode.FAILED_PRECONDITION,
                                                 grpc.StatusCode.INVALID_ARGUMENT)


def test_hostile_requests_get_clear_codes(cluster) -> None:  # type: ignore[no-untyped-def]
    client = cluster["client"]
    with pytest.raises(Exception, match="unknown dispute") as info:
        client.status("f" * 64)
    assert info.value.__class__.__name__ == "NotFound"
    bad = {"signer": "00" * 32, "signature": "00" * 64,
           "context": {"job_id": "x", "dispute_id": "", "round": 0, "kind": "result"},
           "payload": {}}
    with pytest.raises(Exception) as info:
        client.open_dispute(SPEC, [("127.0.0.1:1", canonical_json(bad).decode()),
                                   ("127.0.0.1:2", "{not json")])
    assert getattr(info.value, "code", None) in (grpc.StatusCode.INVALID_ARGUMENT,
                                                 grpc.StatusCode.UNAUTHENTICATED,
                                                 grpc.StatusCode.FAILED_PRECONDITION)
    with pytest.raises(Exception, match="exactly two"):
        client.open_dispute(SPEC, [])
