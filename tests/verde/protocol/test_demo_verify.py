"""The demo story end to end (short), and the verify entry point's input handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proofs import issue_certificate
from proofs.errors import ProofError
from verde.protocol.demo import DemoEvent, run_demo
from verde.protocol.dispute.errors import InvalidVerdictCertificate
from verde.protocol.dispute.verify import verify_verdict_certificate

from .conftest import key


@pytest.fixture(scope="module")
def demo() -> tuple[object, list[DemoEvent]]:
    events: list[DemoEvent] = []
    outcome = run_demo(events.append, steps=24)
    return outcome, events


def test_demo_runs_the_whole_story(demo) -> None:
    outcome, events = demo
    kinds = [e.kind for e in events]
    for kind in ("job", "result", "dispute", "round", "verdict", "certificate", "done"):
        assert kind in kinds
    assert outcome.resolution.honest == ["alice", "carol"]
    assert outcome.resolution.cheaters == ["bob"]
    assert outcome.verified and outcome.tampered_rejected
    assert outcome.accuracy is not None and outcome.accuracy > 0.3


def test_verify_reads_files_and_rejects_other_kinds(demo, tmp_path: Path) -> None:
    outcome, _ = demo
    path = tmp_path / "cert.json"
    path.write_text(json.dumps(outcome.certificate))
    assert verify_verdict_certificate(path).reason == "recomputed_operator"
    assert verify_verdict_certificate(path, recompute=False).recomputed is False
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidVerdictCertificate, match="cannot read"):
        verify_verdict_certificate(tmp_path / "bad.json")
    other = issue_certificate("something-else", {"x": 1}, key("arb"))
    with pytest.raises((InvalidVerdictCertificate, ProofError)):
        verify_verdict_certificate(other)
