"""A slice of the seeded HF property campaign (bench/hf_campaign_bench.py runs hundreds of
cases): random small HF configs x settings x faults, the honest provider never loses."""

from __future__ import annotations

from pathlib import Path

import pytest

from verde.protocol.faults import FaultPlan
from verde.protocol.faults.hf_campaign import ARCHITECTURES, make_case, run_case

pytest.importorskip("transformers")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_honest_provider_never_loses(tmp_path: Path, seed: int) -> None:
    case = make_case(seed, tmp_path)
    assert case.settings["arch"] == ARCHITECTURES[seed % 4]
    outcome = run_case(case)
    assert outcome["honest_won"]


def test_a_loss_of_the_honest_side_is_detected(tmp_path: Path) -> None:
    case = make_case(7, tmp_path)  # the "honest" side corrupts its state at step 1 too
    with pytest.raises(AssertionError, match="honest provider lost"):
        run_case(case, honest_plan=FaultPlan("corrupt_state", step=1))


def test_cases_are_a_function_of_their_seed(tmp_path: Path) -> None:
    a, b = make_case(11, tmp_path / "a"), make_case(11, tmp_path / "b")
    assert a.plan == b.plan and a.settings == b.settings
    assert a.doc["dataset"]["root"] == b.doc["dataset"]["root"]
    assert make_case(12, tmp_path).settings != a.settings
