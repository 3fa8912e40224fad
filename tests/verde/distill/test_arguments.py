"""Bad arguments raise one clear error naming the input (no fixtures: cheap and fast)."""

from __future__ import annotations

import pytest
import torch

from verde.distill.detector import DivergenceDetector
from verde.distill.distillation import DistillConfig, DistilledVerifier, distill_verifier
from verde.distill.errors import (
    DistillArgumentError,
    DistillError,
    NotTrainedError,
    ShapeMismatchError,
)
from verde.distill.models import build_mlp
from verde.distill.monitor import CusumMonitor
from verde.errors import VerdeError


def _probs(n: int, classes: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, classes, generator=g), dim=1)


def test_error_hierarchy() -> None:
    assert issubclass(DistillError, VerdeError)
    assert issubclass(DistillArgumentError, ValueError)
    assert issubclass(ShapeMismatchError, DistillArgumentError)
    assert issubclass(NotTrainedError, DistillError)
    assert not issubclass(NotTrainedError, ValueError)


@pytest.mark.parametrize("fpr", [0.0, 1.0, -0.1, 1.5, float("nan"), "0.01", True])
def test_fpr_outside_open_unit_interval_is_rejected(fpr: object) -> None:
    with pytest.raises(DistillArgumentError, match="fpr"):
        DivergenceDetector().calibrate(_probs(200), _probs(200, seed=1), fpr)  # type: ignore[arg-type]


def test_fpr_inside_interval_is_accepted() -> None:
    detector = DivergenceDetector().calibrate(_probs(200), _probs(200, seed=1), 0.05)
    assert detector.calibrated and detector.fpr == 0.05


def test_too_few_calibration_points_for_fpr() -> None:
    with pytest.raises(DistillArgumentError, match="at least 99 clean requests"):
        DivergenceDetector().calibrate(_probs(50), _probs(50, seed=1), 0.01)


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ShapeMismatchError, match="service_probs"):
        DivergenceDetector().calibrate(_probs(200), _probs(199), 0.05)
    with pytest.raises(ShapeMismatchError, match="classes"):
        DivergenceDetector().calibrate(_probs(200), _probs(200, classes=9), 0.05)
    with pytest.raises(ShapeMismatchError, match=r"\(batch, classes\)"):
        DivergenceDetector().calibrate(torch.ones(200), torch.ones(200), 0.05)


def test_non_probability_rows_are_rejected() -> None:
    logits = torch.randn(200, 10)
    with pytest.raises(DistillArgumentError, match="service_probs"):
        DivergenceDetector().calibrate(logits, _probs(200), 0.05)


def test_unknown_statistic_is_rejected() -> None:
    with pytest.raises(DistillArgumentError, match="statistic"):
        DivergenceDetector("hamming")
    with pytest.raises(DistillArgumentError, match="statistic"):
        DivergenceDetector(3)  # type: ignore[arg-type]


def test_uncalibrated_detector_raises() -> None:
    detector = DivergenceDetector()
    with pytest.raises(NotTrainedError, match="calibrate"):
        detector.flags(_probs(5), _probs(5))
    with pytest.raises(NotTrainedError):
        detector.held_out_bound(100)


def test_untrained_verifier_raises() -> None:
    verifier = DistilledVerifier(build_mlp((8,)))
    with pytest.raises(NotTrainedError, match="not been trained"):
        verifier.probs(torch.zeros(3, 1, 8, 8))
    with pytest.raises(NotTrainedError):
        _ = verifier.val_agreement


def test_distill_arguments() -> None:
    x = torch.rand(20, 1, 8, 8)
    with pytest.raises(DistillArgumentError, match="exactly one"):
        distill_verifier(build_mlp((8,)), x, x)
    with pytest.raises(DistillArgumentError, match="val_service_probs"):
        distill_verifier(build_mlp((8,)), x, x, service_probs=_probs(20))
    with pytest.raises(ShapeMismatchError, match="service_probs"):
        distill_verifier(
            build_mlp((8,)), x, x, service_probs=_probs(19), val_service_probs=_probs(20)
        )
    with pytest.raises(DistillArgumentError, match="classes"):
        distill_verifier(
            build_mlp((8,), classes=4), x, x, service_probs=_probs(20), val_service_probs=_probs(20)
        )
    with pytest.raises(DistillArgumentError, match="temperature"):
        DistillConfig(temperature=0.0)
    with pytest.raises(DistillArgumentError, match="soft_weight"):
        DistillConfig(soft_weight=1.0)


def test_monitor_arguments() -> None:
    with pytest.raises(DistillArgumentError, match="null_rate"):
        CusumMonitor(0.0, 0.1)
    with pytest.raises(DistillArgumentError, match="alt_rate"):
        CusumMonitor(0.05, 0.01)
    with pytest.raises(DistillArgumentError, match="arl0"):
        CusumMonitor(0.01, 0.05, arl0=1.0)
    with pytest.raises(DistillArgumentError, match="one-dimensional"):
        CusumMonitor(0.01, 0.05).update(torch.zeros(2, 2, dtype=torch.bool))
