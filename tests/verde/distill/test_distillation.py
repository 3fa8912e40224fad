"""Greedy layer-wise distillation, verifier quality, and FLOP-based cost."""

from __future__ import annotations

import copy

import pytest
import torch
from sklearn.datasets import make_classification
from torch import nn

from verde.distill.attacks import top2_swap
from verde.distill.detector import DivergenceDetector
from verde.distill.digits import DigitsSetup
from verde.distill.distillation import (
    DistillConfig,
    StageReport,
    distill_verifier,
    parametrised_layers,
)
from verde.distill.errors import DistillArgumentError
from verde.distill.flops import forward_flops, relative_cost
from verde.distill.models import build_mlp, predict_probs, train_classifier


def test_verifier_agrees_with_service(digits: DigitsSetup) -> None:
    test = digits.splits.test
    service = predict_probs(digits.service, test.x).argmax(1)
    verifier = digits.verifier.predict(test.x)
    assert float((verifier == service).float().mean()) >= 0.97
    assert float((verifier == test.y).float().mean()) >= 0.95


def test_verifier_cost_is_a_small_fraction_of_service(digits: DigitsSetup) -> None:
    assert digits.cost <= 0.10
    assert digits.cost == relative_cost(
        digits.verifier.model, digits.service, digits.splits.test.x[:1]
    )


def test_stages_unfreeze_top_down(digits: DigitsSetup) -> None:
    assert digits.verifier.members  # the digits verifier is an ensemble of distilled students
    for member in digits.verifier.members:
        stages = member.stages
        assert [s.trainable_layers for s in stages] == [1, 2, 3]
        assert stages[0].kept
        kept = [s.val_agreement for s in stages if s.kept]
        assert kept == sorted(kept)  # greedy: a stage is kept only if it improved


@pytest.mark.usefixtures("one_thread")
def test_first_stage_trains_only_the_top_layer(digits: DigitsSetup) -> None:
    train, val = digits.splits.train, digits.splits.val
    student = build_mlp((64, 32), seed=3)
    initial = copy.deepcopy(student.state_dict())
    layers = parametrised_layers(student)
    snapshots: list[dict[str, torch.Tensor]] = []
    reports: list[StageReport] = []

    def record(report: StageReport, model: nn.Module) -> None:
        reports.append(report)
        snapshots.append(copy.deepcopy(model.state_dict()))

    distill_verifier(
        student,
        train.x[:400],
        val.x,
        service=digits.service,
        config=DistillConfig(max_epochs_per_stage=8, patience=8, lr=1e-2, augment=False),
        on_stage=record,
    )
    assert [r.trainable_layers for r in reports] == [1, 2, 3]
    assert reports[0].kept
    names = {id(p): n for n, p in student.named_parameters()}
    top = {names[id(p)] for p in layers[-1].parameters()}
    changed = {n for n in initial if not torch.equal(initial[n], snapshots[0][n])}
    assert changed == top
    changed_all = {n for n in initial if not torch.equal(initial[n], snapshots[-1][n])}
    assert len(changed_all) > len(top)


@pytest.mark.usefixtures("one_thread")
def test_distill_from_service_outputs_only(digits: DigitsSetup) -> None:
    # Without the model, only its answers on the client's data.
    train, val, test = digits.splits.train, digits.splits.val, digits.splits.test
    verifier = distill_verifier(
        build_mlp((64,), seed=1),
        train.x,
        val.x,
        service_probs=predict_probs(digits.service, train.x),
        val_service_probs=predict_probs(digits.service, val.x),
        config=DistillConfig(max_epochs_per_stage=15, patience=4),
    )
    agreement = verifier.predict(test.x) == predict_probs(digits.service, test.x).argmax(1)
    assert float(agreement.float().mean()) >= 0.9


def test_flop_counts_from_shapes() -> None:
    assert forward_flops(nn.Linear(64, 10), torch.zeros(3, 64)) == 2 * 64 * 10
    conv = nn.Conv2d(1, 4, 3, padding=1)
    assert forward_flops(conv, torch.zeros(2, 1, 8, 8)) == 2 * 8 * 8 * 4 * 9
    with pytest.raises(DistillArgumentError, match="no Linear/Conv"):
        forward_flops(nn.ReLU(), torch.zeros(1, 4))
    with pytest.raises(DistillArgumentError, match="batch dimension"):
        forward_flops(nn.Linear(4, 2), torch.zeros(0, 4))


class _UserClassifier(nn.Module):
    """A classifier the library has never seen: two linear layers with a tanh, flat inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(20, 256)
        self.head = nn.Linear(256, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(x)))


@pytest.mark.usefixtures("one_thread")
def test_any_user_supplied_classifier() -> None:
    xs, ys = make_classification(
        n_samples=1600,
        n_features=20,
        n_informative=10,
        n_classes=4,
        class_sep=2.0,
        random_state=0,
    )
    x, y = torch.tensor(xs, dtype=torch.float32), torch.tensor(ys)
    torch.manual_seed(0)
    service = train_classifier(_UserClassifier(), x[:800], y[:800], epochs=20, augment=False)
    verifier = distill_verifier(
        build_mlp((32,), inputs=20, classes=4),
        x[:800],
        x[800:1000],
        service=service,
        labels=y[:800],
        config=DistillConfig(max_epochs_per_stage=20, augment=False),
    )
    detector = DivergenceDetector().calibrate(
        predict_probs(service, x[1000:1300]), verifier.probs(x[1000:1300]), 0.05
    )
    honest = predict_probs(service, x[1300:])
    assert relative_cost(verifier.model, service, x[:1]) < 0.2
    clean_flags = int(detector.flags(honest, verifier.probs(x[1300:])).sum())
    assert clean_flags <= detector.held_out_bound(300)
    swapped = top2_swap(honest, torch.Generator())
    assert float(detector.flags(swapped, verifier.probs(x[1300:])).float().mean()) >= 0.8
