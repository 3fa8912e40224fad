"""The student ensemble: its output is the members' mean, its cost their sum, and it is checked."""

from __future__ import annotations

import pytest
import torch

from verde.distill.digits import DigitsSetup
from verde.distill.distillation import DistillConfig
from verde.distill.ensemble import StudentEnsemble, distill_ensemble
from verde.distill.errors import DistillArgumentError
from verde.distill.flops import forward_flops
from verde.distill.models import build_mlp, predict_probs


def test_ensemble_output_is_the_mean_of_member_outputs(digits: DigitsSetup) -> None:
    x = digits.splits.test.x
    members = digits.verifier.members
    assert len(members) >= 2
    mean = torch.stack([m.probs(x) for m in members]).mean(0)
    torch.testing.assert_close(digits.verifier.probs(x), mean, rtol=1e-5, atol=1e-6)


def test_ensemble_cost_is_the_sum_of_member_costs(digits: DigitsSetup) -> None:
    example = digits.splits.test.x[:1]
    total = sum(forward_flops(m.model, example) for m in digits.verifier.members)
    assert forward_flops(digits.verifier.model, example) == total


def test_ensemble_agrees_at_least_as_well_as_a_typical_member(digits: DigitsSetup) -> None:
    x = digits.splits.test.x
    service = predict_probs(digits.service, x).argmax(1)

    def agreement(labels: torch.Tensor) -> float:
        return float((labels == service).float().mean())

    members = sorted(agreement(m.predict(x)) for m in digits.verifier.members)
    assert agreement(digits.verifier.predict(x)) >= members[len(members) // 2]
    assert 0.0 < digits.verifier.val_agreement <= 1.0


def test_empty_ensembles_are_rejected(digits: DigitsSetup) -> None:
    with pytest.raises(DistillArgumentError, match="at least one"):
        StudentEnsemble([])
    with pytest.raises(DistillArgumentError, match="students"):
        distill_ensemble([], digits.splits.train.x, digits.splits.val.x, service=digits.service)


def test_a_member_with_the_wrong_number_of_classes_is_rejected(digits: DigitsSetup) -> None:
    with pytest.raises(DistillArgumentError, match="classes"):
        distill_ensemble(
            [build_mlp((8,), seed=5), build_mlp((8,), seed=6, classes=3)],
            digits.splits.train.x[:64],
            digits.splits.val.x,
            service=digits.service,
            config=DistillConfig(max_epochs_per_stage=1, patience=1, augment=False),
        )
