"""A dispute stored by a release of another protocol version ends without a verdict.

A database carried across an upgrade that changed job ids or commitments (protocol 2 -> 3:
job ids bind the program's code) may hold disputes this release cannot replay. The arbiter
must not guess: it ends them ``failed`` with a reason naming both versions, and nobody's
record changes (an honest provider never loses for an upgrade). The same dispute at this
release's version is decided as usual (the negative case beside it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from arbiter.engine import ArbiterEngine
from arbiter.provider_client import GrpcProviderPeer
from arbiter.storage import Store, open_database
from arbiter.storage.models import DisputeRow
from proofs import SigningKey
from tests.arbiter.conftest import SPEC, key_file, signed_results
from verde.protocol.jobs.spec import SPEC_VERSION


def _engine(tmp_path: Path) -> ArbiterEngine:
    store = Store(open_database(f"sqlite:///{tmp_path / 'arbiter.db'}"))
    return ArbiterEngine(store, SigningKey.load(key_file(tmp_path, "arb")), GrpcProviderPeer,
                         owner="upgraded", lease_s=600, deadline_s=60)


def _open(engine: ArbiterEngine, cluster: dict[str, Any]) -> tuple[str, list[str]]:
    addrs = cluster["addrs"]
    results = signed_results(addrs)
    did = engine.open_dispute(SPEC, [(addrs["honest"], results["honest"]),
                                     (addrs["cheat"], results["cheat"])]).dispute_id
    keys = [json.loads(results[n])["signer"] for n in ("honest", "cheat")]
    return did, keys


def _as_written_by_protocol(engine: ArbiterEngine, did: str, version: int) -> None:
    opening = json.loads(engine.store.dispute(did).state_json)
    assert opening["state"]["spec"]["version"] == SPEC_VERSION
    opening["state"]["spec"]["version"] = version
    with engine.store.db.sessions.begin() as s:
        s.execute(update(DisputeRow).where(DisputeRow.dispute_id == did)
                  .values(state_json=json.dumps(opening)))


def test_a_dispute_of_the_previous_protocol_ends_without_blame(
        cluster: dict[str, Any], tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        did, keys = _open(engine, cluster)
        _as_written_by_protocol(engine, did, SPEC_VERSION - 1)
        assert engine.work_once(did)
        rec = engine.store.dispute(did)
        assert (rec.status, rec.owner, rec.verdict_json) == ("failed", None, "{}")
        assert f"protocol version {SPEC_VERSION - 1}" in (rec.error or "")
        assert f"speaks version {SPEC_VERSION}" in (rec.error or "")
        assert "nobody loses" in (rec.error or "")
        assert [engine.store.provider_record(k) for k in keys] == [(0, 0), (0, 0)]
        assert not engine.work_once(did)  # ended: nothing left to claim
    finally:
        engine.close()
        engine.store.db.close()


def test_the_same_dispute_at_this_protocol_is_decided(cluster: dict[str, Any],
                                                      tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        did, keys = _open(engine, cluster)
        _as_written_by_protocol(engine, did, SPEC_VERSION)
        assert engine.work_once(did)
        rec = engine.store.dispute(did)
        assert rec.status == "decided", rec.error
        assert [engine.store.provider_record(k) for k in keys] == [(1, 0), (0, 1)]
    finally:
        engine.close()
        engine.store.db.close()


@pytest.mark.parametrize("version", [SPEC_VERSION - 1, SPEC_VERSION + 1])
def test_a_job_spec_of_another_protocol_version_names_both(version: int) -> None:
    from verde.protocol.jobs.errors import JobSpecError
    from verde.protocol.jobs.spec import JobSpec

    with pytest.raises(JobSpecError, match=f"version must be {SPEC_VERSION}.*got {version}"):
        JobSpec.from_mapping({**SPEC, "version": version})
