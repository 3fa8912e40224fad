"""Re-classification of flagged answers."""

from __future__ import annotations

import pytest
import torch

from verde.distill.attacks import random_label_switch, top2_swap
from verde.distill.digits import LABEL_TAMPERS, DigitsSetup
from verde.distill.errors import DistillArgumentError, NotTrainedError
from verde.distill.models import predict_probs
from verde.distill.reclassify import (
    LearnedReclassifier,
    VerifierReclassifier,
    choose_reclassifier,
    reclassification_accuracy,
)


def test_chosen_reclassifier_is_the_better_measured_one(digits: DigitsSetup) -> None:
    scores = digits.reclassifier_scores
    assert set(scores) == {"verifier", "learned"}
    assert scores[digits.reclassifier.name] == max(scores.values())


@pytest.mark.parametrize("tamper", [top2_swap, random_label_switch])
def test_reclassification_recovers_true_labels(digits: DigitsSetup, tamper: object) -> None:
    test = digits.splits.test
    honest = predict_probs(digits.service, test.x)
    served = tamper(honest, torch.Generator().manual_seed(0))  # type: ignore[operator]
    verifier = digits.verifier.probs(test.x)
    flagged = digits.detector.flags(served, verifier)
    accuracy = reclassification_accuracy(
        digits.reclassifier, served[flagged], verifier[flagged], test.y[flagged]
    )
    assert accuracy >= 0.94


def test_reclassifier_beats_trusting_the_tampered_service(digits: DigitsSetup) -> None:
    # Negative control: the tampered service's own label is almost never right.
    test = digits.splits.test
    served = top2_swap(predict_probs(digits.service, test.x), torch.Generator())
    assert float((served.argmax(1) == test.y).float().mean()) < 0.1


def test_learned_reclassifier_errors(digits: DigitsSetup) -> None:
    learned = LearnedReclassifier(classes=10)
    probs = predict_probs(digits.service, digits.splits.val.x)
    with pytest.raises(NotTrainedError, match="fit"):
        learned.predict(probs, probs)
    with pytest.raises(DistillArgumentError, match="labels"):
        learned.fit(probs, probs, digits.splits.val.y[:-1], LABEL_TAMPERS)
    with pytest.raises(DistillArgumentError, match="candidates"):
        choose_reclassifier([], probs, probs, digits.splits.val.y, tampers=LABEL_TAMPERS)
    with pytest.raises(DistillArgumentError, match="tampers"):
        choose_reclassifier([VerifierReclassifier()], probs, probs, digits.splits.val.y, tampers=[])
