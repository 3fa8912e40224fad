"""The generated transfer set: blends, boundary walks, and what they do for distillation."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from verde.distill.digits import DigitsSetup
from verde.distill.distillation import (
    DistillConfig,
    StageReport,
    distill_verifier,
    validation_inputs,
)
from verde.distill.errors import DistillArgumentError
from verde.distill.models import build_mlp, predict_probs
from verde.distill.transfer import (
    TRANSFER_KINDS,
    check_transfer_kinds,
    mixup_near,
    towards_boundary,
    transfer_copies,
    transfer_inputs,
)


def _margin(probs: torch.Tensor) -> torch.Tensor:
    top2 = probs.topk(2, dim=1).values.clamp_min(1e-12).log()
    return top2[:, 0] - top2[:, 1]


def test_mixup_near_blends_each_input_with_at_most_half_of_another() -> None:
    x = torch.rand(50, 1, 8, 8)
    out = mixup_near(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # each output is (1 - s) x + s x', s <= 0.5: never further from x than from its partner
    # would allow, and not simply x
    assert float((out - x).abs().amax()) <= 0.5 + 1e-6
    assert not torch.equal(out, x)
    tiny = mixup_near(x, torch.Generator().manual_seed(0), max_share=0.01)
    assert float((tiny - x).abs().amax()) <= 0.01 + 1e-6


def test_mixup_near_rejects_a_bad_share() -> None:
    with pytest.raises(DistillArgumentError, match="max_share"):
        mixup_near(torch.rand(4, 1, 8, 8), torch.Generator(), max_share=0.0)


@pytest.mark.usefixtures("one_thread")
def test_boundary_walk_shrinks_the_service_margin(digits: DigitsSetup) -> None:
    x = digits.splits.train.x[:200]
    before = copy.deepcopy(digits.service.state_dict())
    grads = [None if p.grad is None else p.grad.clone() for p in digits.service.parameters()]
    moved = towards_boundary(digits.service, x, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and float(moved.min()) >= 0.0 and float(moved.max()) <= 1.0
    for p, grad in zip(digits.service.parameters(), grads, strict=True):
        assert (p.grad is None) if grad is None else torch.equal(p.grad, grad)
    for name, value in digits.service.state_dict().items():
        assert torch.equal(value, before[name])
    honest = _margin(predict_probs(digits.service, x))
    walked = _margin(predict_probs(digits.service, moved))
    # Negative control: random sign steps of the same sizes barely move the margin.
    generator = torch.Generator().manual_seed(0)
    size = 0.03 * 3
    noise = size * torch.sign(torch.randn(x.shape, generator=generator))
    random = _margin(predict_probs(digits.service, (x + noise).clamp(0.0, 1.0)))
    assert float(walked.median()) < 0.5 * float(honest.median())
    assert float(walked.median()) < 0.5 * float(random.median())


def test_boundary_walk_rejects_bad_arguments(digits: DigitsSetup) -> None:
    with pytest.raises(DistillArgumentError, match="steps"):
        towards_boundary(digits.service, digits.splits.val.x[:4], torch.Generator(), steps=0)


def test_every_generator_returns_one_input_per_input(digits: DigitsSetup) -> None:
    x = digits.splits.val.x[:16]
    for kind in TRANSFER_KINDS:
        out = transfer_inputs(kind, x, digits.service, torch.Generator().manual_seed(1))
        assert out.shape == x.shape, kind
        assert not torch.equal(out, x), kind


def test_unknown_generators_are_rejected(digits: DigitsSetup) -> None:
    with pytest.raises(DistillArgumentError, match="unknown transfer"):
        transfer_inputs("rotate", digits.splits.val.x[:4], digits.service, torch.Generator())
    with pytest.raises(DistillArgumentError, match="non-empty tuple"):
        check_transfer_kinds(())
    with pytest.raises(DistillArgumentError, match="unknown transfer"):
        DistillConfig(transfer=("jitter", "nope"))
    with pytest.raises(DistillArgumentError, match="copies_per_epoch"):
        DistillConfig(augment_copies=2, copies_per_epoch=3)
    with pytest.raises(DistillArgumentError, match="copies_per_epoch"):
        DistillConfig(copies_per_epoch=0)


@pytest.mark.usefixtures("one_thread")
def test_generated_inputs_raise_agreement_with_the_service(digits: DigitsSetup) -> None:
    # The same small student and schedule, distilled on the client's 718 digits alone or with
    # the generated transfer set: near the service's boundaries (where clean disagreements
    # come from) the transfer set makes the verifier agree with the service more often.
    train, val, calib = digits.splits.train, digits.splits.val, digits.splits.calib
    probe = towards_boundary(digits.service, calib.x, torch.Generator().manual_seed(7))
    service = predict_probs(digits.service, probe).argmax(1)

    def agreement(config: DistillConfig) -> float:
        verifier = distill_verifier(
            build_mlp((64,), seed=4),
            train.x,
            val.x,
            service=digits.service,
            labels=train.y,
            config=config,
        )
        return float((verifier.predict(probe) == service).float().mean())

    schedule = dict(max_epochs_per_stage=12, patience=12, seed=4)
    plain = agreement(DistillConfig(augment=False, **schedule))  # type: ignore[arg-type]
    widened = agreement(
        DistillConfig(augment_copies=8, copies_per_epoch=2, **schedule)  # type: ignore[arg-type]
    )
    assert widened >= plain + 0.03, (plain, widened)


def test_validation_set_is_widened_with_generated_copies(digits: DigitsSetup) -> None:
    val = digits.splits.val.x[:20]
    config = DistillConfig(val_copies=3, seed=5)
    widened = validation_inputs(val, digits.service, config)
    assert widened.shape == (80, *val.shape[1:])
    assert torch.equal(widened[:20], val)
    assert not torch.equal(widened[20:40], val)  # generated, not repeated
    assert torch.equal(widened, validation_inputs(val, digits.service, config))  # seeded
    other = validation_inputs(val, digits.service, DistillConfig(val_copies=3, seed=6))
    assert not torch.equal(widened[20:], other[20:])
    plain = validation_inputs(val, digits.service, DistillConfig(val_copies=0))
    assert torch.equal(plain, val)


@pytest.mark.usefixtures("one_thread")
def test_early_stopping_measures_agreement_on_the_widened_set(digits: DigitsSetup) -> None:
    train, val = digits.splits.train, digits.splits.val.x[:30]
    config = DistillConfig(
        max_epochs_per_stage=3, patience=3, augment_copies=2, copies_per_epoch=1, val_copies=3
    )
    widened = validation_inputs(val, digits.service, config)
    service = predict_probs(digits.service, widened).argmax(1)
    seen: list[tuple[float, float]] = []

    def record(report: StageReport, model: nn.Module) -> None:
        agreement = float((predict_probs(model, widened).argmax(1) == service).float().mean())
        seen.append((report.val_agreement, agreement))

    distill_verifier(
        build_mlp((32,), seed=2),
        train.x[:200],
        val,
        service=digits.service,
        config=config,
        on_stage=record,
    )
    assert seen and all(reported == measured for reported, measured in seen), seen


def test_bad_validation_copy_counts_are_refused(digits: DigitsSetup) -> None:
    with pytest.raises(DistillArgumentError, match="copies must be"):
        transfer_copies(digits.splits.val.x[:4], digits.service, ("jitter",), -1, torch.Generator())
    with pytest.raises(DistillArgumentError, match="val_copies"):
        DistillConfig(val_copies=-1)
    with pytest.raises(DistillArgumentError, match="val_copies"):
        DistillConfig(val_copies=2.0)  # type: ignore[arg-type]
    with pytest.raises(DistillArgumentError, match="val_copies"):
        DistillConfig(val_copies=True)
