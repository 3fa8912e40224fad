"""The whole client set-up on scikit-learn's digits, out of the box.

:func:`prepare_digits` trains a CNN service model (the provider's model, about 9 MFLOPs per
image), distils an ensemble of five 64-256-128-10 MLP verifiers from it by greedy layer-wise
distillation on the client's digits plus inputs generated in code and labelled by the service
(:mod:`verde.distill.transfer`; about 5.5% of the service's FLOPs in all), calibrates divergence
detectors on clean data, and picks the better re-classifier on held-out tampered answers.
:func:`digits_attacks` builds the attack suite the tests and the bench evaluate. Everything is
seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from verde.distill.adversarial import train_learned_detector
from verde.distill.attacks import (
    Attack,
    ModelAttack,
    OutputAttack,
    additive_noise,
    backdoored_copy,
    quantised_copy,
    random_label_switch,
    substitute_model,
    top2_average,
    top2_swap,
)
from verde.distill.combined import CombinedDivergence, fit_combined_divergence
from verde.distill.data import DigitsSplits, load_digit_splits
from verde.distill.detector import DivergenceDetector
from verde.distill.distillation import DistillConfig, DistilledVerifier
from verde.distill.ensemble import distill_ensemble
from verde.distill.errors import DistillArgumentError
from verde.distill.flops import relative_cost
from verde.distill.models import (
    build_mlp,
    build_service_cnn,
    jitter,
    predict_probs,
    train_classifier,
)
from verde.distill.reclassify import (
    LearnedReclassifier,
    Reclassifier,
    VerifierReclassifier,
    choose_reclassifier,
)

LABEL_TAMPERS = (top2_swap, top2_average, random_label_switch)
STUDENT_HIDDEN = (256, 128)
ENSEMBLE_SIZE = 5
COMBINED = "combined"


@dataclass
class DigitsSetup:
    """Everything a client needs to check a digits inference service."""

    splits: DigitsSplits
    service: nn.Module
    verifier: DistilledVerifier
    detector: DivergenceDetector
    learned_detector: DivergenceDetector
    reclassifier: Reclassifier
    reclassifier_scores: dict[str, float]
    cost: float
    cross_entropy_detector: DivergenceDetector


def prepare_digits(
    seed: int = 0,
    *,
    fpr: float = 0.01,
    statistic: str = COMBINED,
    service_epochs: int = 30,
    distill_config: DistillConfig | None = None,
    detector_steps: int = 600,
    ensemble: int = ENSEMBLE_SIZE,
) -> DigitsSetup:
    """Train the service, distil the verifier, calibrate the detectors (``statistic``, Fides'
    cross-entropy and the GAN-trained learned one), choose the re-classifier.

    ``statistic`` is a name from :data:`verde.distill.divergence.STATISTICS` or ``"combined"``
    (the default): the maximum of the rescaled cross-entropy and label surprise, with scales
    fitted on the validation split (see :mod:`verde.distill.combined`), never on the
    calibration split.

    The verifier is the mean of ``ensemble`` independently initialised MLP students (see
    :mod:`verde.distill.ensemble`): more members agree with the service more often, which is what
    limits detection, and each adds about 1.1% of the service's FLOPs."""
    if not isinstance(ensemble, int) or ensemble < 1:
        raise DistillArgumentError(
            f"ensemble must be a positive integer (students), got {ensemble!r}"
        )
    splits = load_digit_splits(seed)
    service = train_classifier(
        build_service_cnn(seed), splits.train.x, splits.train.y, epochs=service_epochs, seed=seed
    )
    config = distill_config or DistillConfig(patience=12, max_epochs_per_stage=60, seed=seed)
    verifier = distill_ensemble(
        [build_mlp(STUDENT_HIDDEN, seed=seed + 100 * i) for i in range(ensemble)],
        splits.train.x,
        splits.val.x,
        service=service,
        labels=splits.train.y,
        config=config,
    )
    # The learned detector and re-classifier are fitted on jittered client inputs (the verifier
    # has seen the plain ones during distillation, so its outputs there are too good to be
    # representative); the combined statistic's scales are fitted on the validation split, which
    # the verifier never trained on (it only stopped early on it), and the re-classifiers are
    # compared there too. The calibration split is used only to set thresholds.
    generator = torch.Generator().manual_seed(seed)
    fit_x = torch.cat([jitter(splits.train.x, generator) for _ in range(2)])
    fit_y = splits.train.y.repeat(2)
    fit_service, fit_verifier = predict_probs(service, fit_x), verifier.probs(fit_x)
    calib_service, calib_verifier = (
        predict_probs(service, splits.calib.x),
        verifier.probs(splits.calib.x),
    )
    val_service, val_verifier = predict_probs(service, splits.val.x), verifier.probs(splits.val.x)
    chosen: str | CombinedDivergence = statistic
    if statistic == COMBINED:
        chosen = fit_combined_divergence(val_service, val_verifier)
    detector = DivergenceDetector(chosen).calibrate(calib_service, calib_verifier, fpr)
    cross_entropy_detector = DivergenceDetector("cross_entropy").calibrate(
        calib_service, calib_verifier, fpr
    )
    learned_score = train_learned_detector(
        fit_service, fit_verifier, tampers=LABEL_TAMPERS, steps=detector_steps, seed=seed
    )
    learned_detector = DivergenceDetector(learned_score).calibrate(
        calib_service, calib_verifier, fpr
    )
    learned = LearnedReclassifier(classes=10, seed=seed).fit(
        fit_service, fit_verifier, fit_y, LABEL_TAMPERS
    )
    reclassifier, scores = choose_reclassifier(
        [VerifierReclassifier(), learned],
        val_service,
        val_verifier,
        splits.val.y,
        tampers=LABEL_TAMPERS,
        seed=seed,
    )
    cost = relative_cost(verifier.model, service, splits.test.x[:1])
    return DigitsSetup(
        splits,
        service,
        verifier,
        detector,
        learned_detector,
        reclassifier,
        scores,
        cost,
        cross_entropy_detector,
    )


def digits_attacks(setup: DigitsSetup, seed: int = 0) -> list[Attack]:
    """The attack suite: three label-changing output attacks, output noise, and three models
    a provider might serve instead (a small substitute, a 3-bit copy, a backdoored copy)."""
    train = setup.splits.train
    return [
        OutputAttack("top2_swap", top2_swap),
        OutputAttack("top2_average", top2_average),
        OutputAttack("random_label_switch", random_label_switch),
        OutputAttack("output_noise", additive_noise(3.0), label_changing=False),
        ModelAttack("substitute_mlp", substitute_model(train.x, train.y, seed=seed + 1)),
        ModelAttack("quantised_3bit", quantised_copy(setup.service, bits=3)),
        ModelAttack(
            "backdoor_trigger",
            backdoored_copy(setup.service, train.x, train.y, seed=seed + 2),
            triggered=True,
        ),
    ]
