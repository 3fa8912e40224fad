"""DDP on loopback gloo with verde's hook: a Byzantine rank, accuracy kept; and the API."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import verde.robust as R
from verde.engines.torch_distributed import ByzantineHookState, RobustHookState, robust_state

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("gloo_ranks", HERE.parents[1] / "gloo_ranks.py")
gloo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gloo)
WORKER = HERE / "ddp_worker.py"
IPM = {"attack": "ipm", "params": {"eps": 4.0}}  # the Byzantine rank sends -4x its gradient


def _train(tmp: Path, world: int, **opts) -> float:
    base = {"steps": 60, "f": 1, "mode": "auto"}
    results = gloo.run_ranks(WORKER, "train", world, tmp, {**base, **opts}, timeout=600)
    return results[0]["accuracy"]  # rank 0 is honest in every run


@pytest.mark.slow
def test_byzantine_rank_collapses_plain_averaging_but_not_the_verde_hook(tmp_path):
    clean = _train(tmp_path, 2, rule="mean", f=0)
    assert clean > 0.85
    # 4 ranks, rank 3 Byzantine: median per bucket (exact: coordinate-wise); many buckets
    median = _train(tmp_path, 4, rule="median", byzantine=3, bucket_cap_mb=0.001, **IPM)
    averaged = _train(tmp_path, 4, rule="mean", f=0, byzantine=3, **IPM)
    assert averaged < 0.3, averaged  # what plain DDP averaging does with that rank
    assert median >= clean - 0.05, (median, clean)
    # 2 ranks, rank 1 Byzantine: no symmetric rule survives 1 of 2; FLTrust's trusted
    # reference (a small batch every rank holds) does, on the whole gradient
    fltrust = _train(tmp_path, 2, rule="fltrust", byzantine=1, bucket_cap_mb=0.001, **IPM)
    assert fltrust >= clean - 0.05, (fltrust, clean)


def test_auto_mode_is_per_bucket_only_for_coordinatewise_rules():
    assert robust_state("median", f=1).mode == "bucket"
    assert robust_state("trimmed_mean", f=1).mode == "bucket"
    assert robust_state("krum", f=1).mode == "whole"
    assert robust_state(R.compose(R.NNM(1), R.Median(1))).mode == "whole"
    with pytest.warns(R.ApproximationWarning, match="not coordinate-wise"):
        robust_state("krum", f=1, mode="bucket")


def test_bad_hook_configuration():
    with pytest.raises(ValueError, match="mode must be"):
        robust_state("median", f=1, mode="sometimes")
    with pytest.raises(ValueError, match="aggregator object"):
        RobustHookState("median")
    with pytest.raises(ValueError, match="cannot run from one"):
        ByzantineHookState(robust_state("median", f=1), "alie")
