"""The GAN-trained learned detector (Fides' adversarial set-up)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from verde.distill.adversarial import train_learned_detector
from verde.distill.attacks import top2_swap
from verde.distill.detector import DivergenceDetector
from verde.distill.digits import DigitsSetup
from verde.distill.errors import DistillArgumentError
from verde.distill.models import predict_probs


def test_learned_detector_detects_label_changes(
    digits: DigitsSetup, attacks: dict, allowed_misses: Callable[[int, float], int]
) -> None:
    # Stated rate: each label-changing answer is flagged with probability at least 95%
    # (measured 95.8-100% over simulated machines and seeds), up to the sampling error of the
    # 450 test requests (see the allowed_misses fixture).
    test = digits.splits.test
    honest = predict_probs(digits.service, test.x)
    verifier = digits.verifier.probs(test.x)
    for name in ("top2_swap", "top2_average", "random_label_switch"):
        served = attacks[name].serve(test.x, honest, torch.Generator().manual_seed(0))
        missed = int((~digits.learned_detector.flags(served, verifier)).sum())
        assert missed <= allowed_misses(len(test), 0.95), (name, missed)


@pytest.mark.usefixtures("one_thread")
def test_gan_only_detector_trains_and_calibrates(digits: DigitsSetup) -> None:
    # The generator alone (no hand-written tampers) must still teach the detector something:
    # it flips labels, so swapped answers score far above clean ones.
    val, calib = digits.splits.val, digits.splits.calib
    score = train_learned_detector(
        predict_probs(digits.service, val.x),
        digits.verifier.probs(val.x),
        tampers=[],
        gan=True,
        steps=200,
    )
    detector = DivergenceDetector(score).calibrate(
        predict_probs(digits.service, calib.x), digits.verifier.probs(calib.x), 0.05
    )
    test = digits.splits.test
    honest = predict_probs(digits.service, test.x)
    verifier = digits.verifier.probs(test.x)
    assert int(detector.flags(honest, verifier).sum()) <= detector.held_out_bound(len(test))
    swapped = top2_swap(honest, torch.Generator())
    assert float(detector.flags(swapped, verifier).float().mean()) >= 0.5


def test_learned_detector_arguments(digits: DigitsSetup) -> None:
    probs = predict_probs(digits.service, digits.splits.val.x)
    with pytest.raises(DistillArgumentError, match="tamper"):
        train_learned_detector(probs, probs, tampers=[], gan=False)
    with pytest.raises(DistillArgumentError, match="steps"):
        train_learned_detector(probs, probs, tampers=[top2_swap], steps=0)
