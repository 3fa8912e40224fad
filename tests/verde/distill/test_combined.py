"""The combined statistic: its scale fit, its calibration on held-out data, and bad arguments.

The held-out false-positive check uses the same BetaBinomial 99.9% bound as test_detector.py.
"""

from __future__ import annotations

import pytest
import torch

from verde.distill.attacks import top2_average
from verde.distill.combined import CombinedDivergence, fit_combined_divergence
from verde.distill.detector import DivergenceDetector
from verde.distill.digits import DigitsSetup
from verde.distill.divergence import cross_entropy, label_surprise
from verde.distill.errors import DistillArgumentError
from verde.distill.models import predict_probs


def _clean(digits: DigitsSetup, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = getattr(digits.splits, split).x
    return predict_probs(digits.service, x), digits.verifier.probs(x)


def test_digits_deploys_the_combined_statistic(digits: DigitsSetup) -> None:
    statistic = digits.detector.statistic
    assert isinstance(statistic, CombinedDivergence)
    assert statistic.statistics == ("cross_entropy", "label_surprise")
    assert digits.cross_entropy_detector.statistic == "cross_entropy"


def test_combined_score_is_the_largest_rescaled_statistic(digits: DigitsSetup) -> None:
    ps, pv = _clean(digits, "val")
    combined = fit_combined_divergence(*_clean(digits, "train"))
    ce = (cross_entropy(ps.double(), pv.double()) - combined.centres[0]) / combined.scales[0]
    ls = (label_surprise(ps.double(), pv.double()) - combined.centres[1]) / combined.scales[1]
    torch.testing.assert_close(combined(ps, pv), torch.maximum(ce, ls))
    # on its own fitting data, about 10% of each rescaled statistic lies above 1 (the scale is
    # the 90th percentile's distance from the median), and about 1% at 0.99
    fit = fit_combined_divergence(ps, pv)
    rescaled = (label_surprise(ps.double(), pv.double()) - fit.centres[1]) / fit.scales[1]
    assert 0.05 <= float((rescaled > 1.0).double().mean()) <= 0.12
    fit99 = fit_combined_divergence(ps, pv, high_quantile=0.99)
    rescaled = (label_surprise(ps.double(), pv.double()) - fit99.centres[1]) / fit99.scales[1]
    assert float((rescaled > 1.0).double().mean()) <= 0.02


def _fitted(combined: CombinedDivergence) -> torch.Tensor:
    return torch.tensor([*combined.centres, *combined.scales], dtype=torch.float64)


# The probabilities below are recomputed by plain torch on this test's thread count, not the
# fixture's one thread; on some CPUs and BLAS builds that changes their last bits, and the
# fitted quantiles move with them (by 2.5e-7 relative on the machine that showed it). The
# training-split fit differs from the deployed one by 48-76% relative (measured over
# simulated machines and seeds), far beyond this tolerance.
_SAME_FIT_RTOL = 1e-3


def test_digits_fits_the_combined_scales_on_the_validation_split(digits: DigitsSetup) -> None:
    # fresh clean data the verifier never trained on; refitting there gives the deployed scales,
    # refitting on the training inputs (which the verifier was distilled on) does not
    deployed = digits.detector.statistic
    assert isinstance(deployed, CombinedDivergence)
    on_val = fit_combined_divergence(*_clean(digits, "val"))
    on_train = fit_combined_divergence(*_clean(digits, "train"))
    assert on_val.statistics == on_train.statistics == deployed.statistics
    torch.testing.assert_close(_fitted(on_val), _fitted(deployed), rtol=_SAME_FIT_RTOL, atol=0)
    assert not torch.allclose(_fitted(on_train), _fitted(deployed), rtol=_SAME_FIT_RTOL, atol=0)


@pytest.mark.parametrize("fpr", [0.01, 0.05])
def test_combined_calibration_holds_fpr_on_held_out_clean_data(
    digits: DigitsSetup, fpr: float
) -> None:
    combined = fit_combined_divergence(*_clean(digits, "train"))
    detector = DivergenceDetector(combined).calibrate(*_clean(digits, "calib"), fpr)
    service, verifier = _clean(digits, "test")
    flagged = int(detector.flags(service, verifier).sum())
    assert flagged <= detector.held_out_bound(service.shape[0], confidence=0.999)


def test_combined_flags_label_flips_that_cross_entropy_underrates(digits: DigitsSetup) -> None:
    # top-2 averaging leaves the served distribution close to the honest one in cross-entropy;
    # the label-surprise half of the combined score still sees the flipped label.
    service, verifier = _clean(digits, "test")
    served = top2_average(service, torch.Generator().manual_seed(0))
    combined = float(digits.detector.flags(served, verifier).float().mean())
    fides = float(digits.cross_entropy_detector.flags(served, verifier).float().mean())
    assert combined >= fides
    assert combined >= 0.95


def test_bad_arguments_are_rejected(digits: DigitsSetup) -> None:
    ps, pv = _clean(digits, "val")
    with pytest.raises(DistillArgumentError, match="unknown statistics"):
        fit_combined_divergence(ps, pv, ("cross_entropy", "nope"))
    with pytest.raises(DistillArgumentError, match="at least one statistic"):
        fit_combined_divergence(ps, pv, ())
    with pytest.raises(DistillArgumentError, match="at least 100"):
        fit_combined_divergence(ps[:10], pv[:10])
    with pytest.raises(DistillArgumentError):
        fit_combined_divergence(ps, pv[:-1])
    for bad in (0.5, 1.0, 1):
        with pytest.raises(DistillArgumentError, match="high_quantile"):
            fit_combined_divergence(ps, pv, high_quantile=bad)  # type: ignore[arg-type]
