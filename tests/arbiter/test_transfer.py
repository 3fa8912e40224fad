"""arbiter.transfer: nothing is fetched without an honest provider or from a changed result."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbiter.errors import ArbiterError
from arbiter.transfer import check_same_root, fetch_results
from verde.protocol.dispute.multi import Resolution
from verde.protocol.jobs.spec import JobSpec


def _unreachable(addr: str) -> object:
    raise AssertionError(f"no provider should be dialled ({addr})")


def test_no_honest_provider_means_nothing_to_fetch(tmp_path: Path) -> None:
    spec = JobSpec.from_mapping({"program": "mlp", "dataset": {"name": "digits"},
                                 "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 1,
                                 "batch_size": 4})
    outcome = Resolution(accepted=None, honest=[], cheaters=["a", "b"], groups=[["a"], ["b"]])
    with pytest.raises(ArbiterError, match="no honest provider"):
        fetch_results(spec, outcome, _unreachable, tmp_path / "out")  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_a_provider_signing_another_final_state_is_refused() -> None:
    check_same_root(b"\x01" * 32, b"\x01" * 32, "p")
    with pytest.raises(ArbiterError, match="not the accepted"):
        check_same_root(b"\x01" * 32, b"\x02" * 32, "p")
