"""Calibration holds its false-positive rate on held-out clean data.

Sampling-error bound: with n calibration scores and k = ceil((n + 1)(1 - fpr)), the number of
flags among m fresh clean requests follows BetaBinomial(m, n + 1 - k, k) under exchangeability
(split-conformal calibration; see verde/distill/detector.py). We assert the count is at most the
99.9% quantile of that law, so a correct calibration fails this test with probability <= 0.1%
(and, the data and seeds being fixed, the outcome is deterministic).
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from verde.distill.detector import DivergenceDetector
from verde.distill.digits import DigitsSetup
from verde.distill.errors import DistillArgumentError, NotTrainedError
from verde.distill.models import predict_probs


def _clean(digits: DigitsSetup, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = getattr(digits.splits, split).x
    return predict_probs(digits.service, x), digits.verifier.probs(x)


@pytest.mark.parametrize("statistic", ["cross_entropy", "kl", "label_surprise", "top_k_rank"])
@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.2])
def test_calibration_holds_fpr_on_held_out_clean_data(
    digits: DigitsSetup, statistic: str, fpr: float
) -> None:
    detector = DivergenceDetector(statistic).calibrate(*_clean(digits, "calib"), fpr)
    service, verifier = _clean(digits, "test")
    flagged = int(detector.flags(service, verifier).sum())
    bound = detector.held_out_bound(service.shape[0], confidence=0.999)
    assert flagged <= bound, (statistic, fpr, flagged, bound)


def test_calibration_is_not_trivially_conservative(digits: DigitsSetup) -> None:
    # At fpr=0.2 a continuous statistic must actually flag clean requests near that rate.
    detector = DivergenceDetector("cross_entropy").calibrate(*_clean(digits, "calib"), 0.2)
    rate = float(detector.flags(*_clean(digits, "test")).float().mean())
    assert 0.1 <= rate <= 0.3


def test_learned_detector_holds_fpr(digits: DigitsSetup) -> None:
    service, verifier = _clean(digits, "test")
    flagged = int(digits.learned_detector.flags(service, verifier).sum())
    assert flagged <= digits.learned_detector.held_out_bound(service.shape[0])


def test_bound_catches_a_miscalibrated_detector(digits: DigitsSetup) -> None:
    # Negative control: calibrating against the service itself (a "verifier" that always
    # agrees) puts the threshold at ~0, so real verifier outputs on clean traffic are flagged
    # far beyond the bound: the FPR test above can fail.
    service_calib, _ = _clean(digits, "calib")
    detector = DivergenceDetector("kl").calibrate(service_calib, service_calib, 0.01)
    service, verifier = _clean(digits, "test")
    flagged = int(detector.flags(service, verifier).sum())
    assert flagged > detector.held_out_bound(service.shape[0])


def _clean_batch_alarm_bound(
    detector: DivergenceDetector, batches: int, size: int, confidence: float = 0.999
) -> int:
    """The ``confidence`` quantile of the number of batch alarms among ``batches`` clean batches.

    A batch of ``size`` alarms when its flag count reaches the binomial test's critical count at
    the nominal rate (``decide_batch``, batch_alpha 0.01). Given the threshold's true clean flag
    rate r, batches alarm independently, so their count is Binomial(batches, P(alarm | r)); r
    itself follows the Beta law of split-conformal thresholds, integrated here over its
    quantiles ``flag_rate_bound(u)``. The nominal test alone would allow one alarm per hundred
    batches only when r is exactly the target; a calibration draw that landed high raises it.
    """
    critical = next(
        f for f in range(size + 1) if stats.binom.sf(f - 1, size, detector.fpr) < 0.01
    )
    grid = 2000
    rates = [detector.flag_rate_bound((i + 0.5) / grid) for i in range(grid)]
    per_batch = stats.binom.sf(critical - 1, size, rates)
    for alarms in range(batches + 1):
        if float(stats.binom.sf(alarms, batches, per_batch).mean()) <= 1.0 - confidence:
            return alarms
    return batches


def test_clean_batches_do_not_raise_batch_alarms(digits: DigitsSetup) -> None:
    service, verifier = _clean(digits, "test")
    alarms = [
        digits.detector.decide_batch(service[i : i + 50], verifier[i : i + 50]).alarm
        for i in range(0, service.shape[0], 50)
    ]
    # 9 batches of 50 against 449 calibration requests at 1%: the bound is 2 alarms (a correct
    # calibration raises none with probability about 98%, two or more with about 0.1%)
    assert sum(alarms) <= _clean_batch_alarm_bound(digits.detector, len(alarms), 50)


def test_clean_batch_alarm_bound_allows_few_alarms() -> None:
    # The bound the test above uses is not vacuous: 2 of 9 batches at 99.9%, 1 at 99%, none
    # at 90% (it depends on the calibration set's size and target rate, not on its scores).
    u = torch.rand(449, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    probs = torch.stack([u, 1.0 - u], dim=1)
    detector = DivergenceDetector(_first_column).calibrate(probs, probs, 0.01)
    bounds = [_clean_batch_alarm_bound(detector, 9, 50, c) for c in (0.999, 0.99, 0.9)]
    assert bounds == [2, 1, 0]


def test_cheating_batch_raises_batch_alarm(digits: DigitsSetup, attacks: dict) -> None:
    x = digits.splits.test.x[:50]
    honest = predict_probs(digits.service, x)
    served = attacks["top2_swap"].serve(x, honest, torch.Generator().manual_seed(0))
    decision = digits.detector.decide_batch(served, digits.verifier.probs(x))
    assert decision.alarm and decision.p_value < 1e-6
    assert decision.flagged >= 45


def _first_column(service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
    return service_probs[:, 0]


def test_flag_rate_bound_covers_the_true_clean_rate() -> None:
    # Scores uniform on (0, 1): a threshold t flags clean requests at exactly 1 - t, so the true
    # rate of each calibration draw is known. The 95% bound must lie above it in about 95% of
    # draws (Beta(n + 1 - k, k) law), and a bound at 50% in about half of them.
    generator = torch.Generator().manual_seed(0)
    draws, above_95, above_50 = 400, 0, 0
    for _ in range(draws):
        u = torch.rand(449, generator=generator, dtype=torch.float64)
        probs = torch.stack([u, 1.0 - u], dim=1)
        detector = DivergenceDetector(_first_column).calibrate(probs, probs, 0.01)
        true_rate = 1.0 - detector.threshold
        above_95 += true_rate <= detector.flag_rate_bound(0.95)
        above_50 += true_rate <= detector.flag_rate_bound(0.5)
    assert 0.92 <= above_95 / draws <= 0.98, above_95
    assert 0.42 <= above_50 / draws <= 0.58, above_50


def test_flag_rate_bound_needs_a_calibrated_detector_and_a_rate() -> None:
    with pytest.raises(NotTrainedError):
        DivergenceDetector().flag_rate_bound()
    u = torch.rand(200, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    probs = torch.stack([u, 1.0 - u], dim=1)
    detector = DivergenceDetector(_first_column).calibrate(probs, probs, 0.05)
    assert detector.flag_rate_bound(0.99) > detector.flag_rate_bound(0.95) > 0.05
    with pytest.raises(DistillArgumentError, match="confidence"):
        detector.flag_rate_bound(1.0)
