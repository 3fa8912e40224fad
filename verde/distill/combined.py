"""A statistic that combines several divergence statistics: the maximum of their standard scores.

Cross-entropy (Fides, Kumar et al., ASIA CCS 2024) sees a distribution's whole shape, so it
catches a substitute model that is off everywhere, but it scores top-2 averaging low when the
service left little mass on its runner-up; the verifier's surprise at the served label scores a
label flip the same however the probabilities were moved, but misses shape-only changes. Each
statistic is put on a common scale by its median and an upper quantile (by default the 90th
percentile) on clean outputs of a *fitting* set (client data that is not the calibration set,
and that the verifier was not distilled on, so that its outputs there look like live traffic),
and the combined score is the largest of the rescaled statistics. The result is a fixed
function of (p_service, p_verifier), so :class:`verde.distill.detector.DivergenceDetector`
calibrates it on the clean calibration split exactly like any other statistic, and its
split-conformal false-positive guarantee holds unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from verde.distill._checks import check_probabilities, check_same_requests
from verde.distill.divergence import STATISTICS
from verde.distill.errors import DistillArgumentError

_LOW_QUANTILE = 0.5
_HIGH_QUANTILE = 0.9
_MIN_FIT = 100
_MIN_SPREAD = 1e-9


@dataclass(frozen=True)
class CombinedDivergence:
    """``max_i (s_i(p_s, p_v) - median_i) / (q_i - median_i)`` over the named statistics, with
    ``q_i`` the fitted upper quantile."""

    statistics: tuple[str, ...]
    centres: tuple[float, ...]
    scales: tuple[float, ...]

    def __call__(self, service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
        ps, pv = service_probs.double(), verifier_probs.double()
        rescaled = [
            (STATISTICS[name](ps, pv) - centre) / scale
            for name, centre, scale in zip(self.statistics, self.centres, self.scales, strict=True)
        ]
        return torch.stack(rescaled).max(dim=0).values


def fit_combined_divergence(
    service_probs: torch.Tensor,
    verifier_probs: torch.Tensor,
    statistics: Sequence[str] = ("cross_entropy", "label_surprise"),
    high_quantile: float = _HIGH_QUANTILE,
) -> CombinedDivergence:
    """Fit the per-statistic scales on clean outputs that are *not* the calibration set.

    ``high_quantile`` (above the median, below 1) sets each scale: a fitting set of a couple of
    hundred requests pins down the 90th percentile far better than the 99th.
    """
    names = tuple(statistics)
    if not isinstance(high_quantile, float) or not _LOW_QUANTILE < high_quantile < 1.0:
        raise DistillArgumentError(
            f"high_quantile must be a float in ({_LOW_QUANTILE}, 1), got {high_quantile!r}"
        )
    if not names:
        raise DistillArgumentError("statistics must name at least one statistic")
    unknown = [n for n in names if n not in STATISTICS]
    if unknown:
        raise DistillArgumentError(
            f"unknown statistics {unknown}; choose from {sorted(STATISTICS)}"
        )
    check_probabilities("service_probs", service_probs)
    check_probabilities("verifier_probs", verifier_probs)
    check_same_requests("service_probs", service_probs, "verifier_probs", verifier_probs)
    if service_probs.shape[0] < _MIN_FIT:
        raise DistillArgumentError(
            f"fitting the scales needs at least {_MIN_FIT} clean requests, "
            f"got {service_probs.shape[0]}"
        )
    ps, pv = service_probs.double(), verifier_probs.double()
    levels = torch.tensor([_LOW_QUANTILE, high_quantile], dtype=torch.double)
    centres, scales = [], []
    for name in names:
        low, high = torch.quantile(STATISTICS[name](ps, pv), levels).tolist()
        centres.append(low)
        scales.append(max(high - low, _MIN_SPREAD))
    return CombinedDivergence(names, tuple(centres), tuple(scales))
