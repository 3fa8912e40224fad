"""Every attack is detected above a stated rate at the calibrated 1% false-positive rate.

Stated rates (the deployed detector, i.e. the combined cross-entropy/label-surprise statistic,
conformal threshold at fpr = 0.01, 450 held-out digits; measured values at seed 0 are in the
bench's JSON line: 99.8%, 99.8% and 100% for the three label-changing attacks):

- label-changing output attacks (top-2 swap, top-2 averaging, random label switch): each
  tampered answer is flagged with probability at least 98%, 98% and 99%, and at least 94% of
  the flagged ones are re-classified to their true label. The test allows the sampling error
  of 450 requests: misses up to the 99.9% quantile of Binomial(450, 1 - rate), i.e. 19, 19
  and 12, so a detector that meets its rate fails with probability at most 0.1%. The models are
  trained with plain torch, whose last bits (and so the trained weights) differ between CPUs,
  BLAS builds and thread counts; one such simulated machine flags 441 of 450 top-2 swaps
  (98.0%), here 449;
- model substitution (a small, briefly trained MLP): at least 90% of all answers are flagged;
- backdoored service (trigger in the input): at least 90% of the answers the backdoor changed;
- additive output noise and a 3-bit quantised service: they change few labels; at least 50% of
  the answers whose label they change are flagged, and they are flagged more often than clean
  traffic overall;
- cheating on a fraction p of requests: see test_monitor.py (CUSUM alarm within 1500 requests
  at p = 5%).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scipy import stats

from verde.distill.attacks import Attack, OutputAttack
from verde.distill.digits import DigitsSetup
from verde.distill.evaluation import AttackReport, evaluate_attack

LABEL_CHANGING_RATES = {"top2_swap": 0.98, "top2_average": 0.98, "random_label_switch": 0.99}


def _report(digits: DigitsSetup, attack: Attack) -> AttackReport:
    return evaluate_attack(
        attack,
        service=digits.service,
        verifier=digits.verifier,
        detector=digits.detector,
        reclassifier=digits.reclassifier,
        x=digits.splits.test.x,
        y=digits.splits.test.y,
    )


@pytest.mark.parametrize("name", sorted(LABEL_CHANGING_RATES))
def test_label_changing_attacks_are_detected(
    digits: DigitsSetup,
    attacks: dict,
    name: str,
    allowed_misses: Callable[[int, float], int],
) -> None:
    report = _report(digits, attacks[name])
    assert report.changed == report.requests
    missed = report.changed - round(report.detection_rate * report.changed)
    assert missed <= allowed_misses(report.changed, LABEL_CHANGING_RATES[name]), report
    assert report.reclassification_accuracy >= 0.94, report


def test_allowed_misses_still_catch_a_weaker_detector(
    allowed_misses: Callable[[int, float], int],
) -> None:
    # What the bound admits on 450 requests: 19 misses at a stated 98%, 12 at 99%; a detector
    # that flags only 93% of label-changing answers (about 32 misses) fails with probability
    # above 99%.
    assert [allowed_misses(450, r) for r in (0.98, 0.99)] == [19, 12]
    assert stats.binom.cdf(allowed_misses(450, 0.98), 450, 0.07) < 0.01


def test_substitute_model_is_detected(digits: DigitsSetup, attacks: dict) -> None:
    report = _report(digits, attacks["substitute_mlp"])
    assert report.flag_rate >= 0.9, report


def test_backdoored_service_is_detected(digits: DigitsSetup, attacks: dict) -> None:
    report = _report(digits, attacks["backdoor_trigger"])
    assert report.changed >= 0.5 * report.requests  # the backdoor works
    assert report.detection_rate >= 0.9, report


@pytest.mark.parametrize("name", ["output_noise", "quantised_3bit"])
def test_subtle_attacks_are_flagged_when_they_change_labels(
    digits: DigitsSetup, attacks: dict, name: str
) -> None:
    report = _report(digits, attacks[name])
    assert report.changed > 0
    assert report.detection_rate >= 0.5, report
    assert report.flag_rate > digits.detector.fpr, report


def test_honest_service_is_not_an_attack(digits: DigitsSetup) -> None:
    # Negative control: the same evaluation on honest answers flags no more than the bound.
    honest = OutputAttack("honest", lambda probs, generator: probs, label_changing=False)
    report = _report(digits, honest)
    assert report.changed == 0
    bound = digits.detector.held_out_bound(report.requests) / report.requests
    assert report.flag_rate <= bound
