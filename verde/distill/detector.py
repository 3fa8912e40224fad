"""A divergence detector calibrated on clean data to a chosen false-positive rate.

The threshold is the split-conformal quantile of the clean calibration scores (Vovk et al.,
"Algorithmic Learning in a Random World", 2005; Angelopoulos & Bates, "A Gentle Introduction to
Conformal Prediction", 2021): with n calibration scores and target rate alpha, the threshold is
the k-th smallest score, k = ceil((n + 1)(1 - alpha)), and a request is flagged when its score
is strictly above it. If calibration and live clean requests are exchangeable, a clean request is
then flagged with probability at most alpha (and at least alpha - 1/(n + 1) for continuous
scores); the realised rate on m held-out requests follows a beta-binomial law,
BetaBinomial(m, n + 1 - k, k), which the tests use as their sampling-error bound.

Per-batch decisions add a one-sided binomial test: a batch whose flag count is improbably high
under the calibrated rate (p-value below ``batch_alpha``) raises a batch alarm even if the
provider cheats subtly on each request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import stats

from verde.distill._checks import check_probabilities, check_rate, check_same_requests
from verde.distill.divergence import STATISTICS, Statistic, divergence
from verde.distill.errors import DistillArgumentError, NotTrainedError


@dataclass(frozen=True)
class BatchDecision:
    """The detector's verdict on one batch of requests."""

    scores: torch.Tensor
    flags: torch.Tensor
    flagged: int
    p_value: float
    alarm: bool


class DivergenceDetector:
    """Flags requests whose service/verifier divergence exceeds a calibrated threshold."""

    def __init__(self, statistic: str | Statistic = "cross_entropy") -> None:
        if isinstance(statistic, str):
            if statistic not in STATISTICS:
                raise DistillArgumentError(
                    f"statistic must be one of {sorted(STATISTICS)} or a callable, "
                    f"got {statistic!r}"
                )
        elif not callable(statistic):
            raise DistillArgumentError(
                f"statistic must be a name or a callable (service_probs, verifier_probs) -> "
                f"scores, got {type(statistic).__name__}"
            )
        self.statistic = statistic
        self._threshold: float | None = None
        self._fpr: float | None = None
        self._n_calibration = 0
        self._rank = 0

    @property
    def calibrated(self) -> bool:
        """Whether :meth:`calibrate` has set a threshold."""
        return self._threshold is not None

    @property
    def threshold(self) -> float:
        """The calibrated score threshold (requests strictly above it are flagged)."""
        if self._threshold is None:
            raise NotTrainedError("detector is not calibrated; call calibrate(...) first")
        return self._threshold

    @property
    def fpr(self) -> float:
        """The target false-positive rate the threshold was calibrated for."""
        if self._fpr is None:
            raise NotTrainedError("detector is not calibrated; call calibrate(...) first")
        return self._fpr

    def held_out_bound(self, m: int, confidence: float = 0.999) -> int:
        """Largest number of flags on m fresh clean requests consistent with calibration.

        The ``confidence`` quantile of BetaBinomial(m, n + 1 - k, k) (see module docstring).
        """
        law = self._clean_rate_law()
        check_rate("confidence", confidence)
        return int(stats.betabinom.ppf(confidence, m, *law))

    def flag_rate_bound(self, confidence: float = 0.95) -> float:
        """Upper ``confidence`` bound on the rate at which this threshold flags clean requests.

        Given the calibration set, the probability that a fresh clean request is flagged is
        itself random over calibration draws: Beta(n + 1 - k, k) for split-conformal thresholds
        (Vovk, "Conditional validity of inductive conformal predictors", ACML 2012). With a few
        hundred calibration requests it spreads from about a third to about twice the target,
        so a sequential test that assumes exactly the target rate alarms early on clean traffic
        whenever the draw landed high; this bound is the rate such a test should assume.
        """
        law = self._clean_rate_law()
        check_rate("confidence", confidence)
        return float(stats.beta.ppf(confidence, *law))

    def _clean_rate_law(self) -> tuple[int, int]:
        """Parameters (n + 1 - k, k) of the Beta law of the clean flag rate (module docstring);
        NotTrainedError when uncalibrated."""
        self.threshold  # noqa: B018 - raises NotTrainedError when uncalibrated
        n, k = self._n_calibration, self._rank
        return n + 1 - k, k

    def calibrate(
        self, service_probs: torch.Tensor, verifier_probs: torch.Tensor, fpr: float
    ) -> DivergenceDetector:
        """Set the threshold from clean (honest) service outputs and the verifier's outputs."""
        fpr = check_rate("fpr", fpr)
        scores = self.scores(service_probs, verifier_probs)
        n = int(scores.shape[0])
        k = math.ceil((n + 1) * (1.0 - fpr))
        if k > n:
            raise DistillArgumentError(
                f"calibration needs at least {math.ceil(1.0 / fpr) - 1} clean requests for "
                f"fpr={fpr}, got {n}"
            )
        self._threshold = float(torch.sort(scores).values[k - 1])
        self._fpr, self._n_calibration, self._rank = fpr, n, k
        return self

    def scores(self, service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
        """Divergence score of every request (higher is more suspicious)."""
        if isinstance(self.statistic, str):
            return divergence(service_probs, verifier_probs, self.statistic)
        check_probabilities("service_probs", service_probs)
        check_probabilities("verifier_probs", verifier_probs)
        check_same_requests("service_probs", service_probs, "verifier_probs", verifier_probs)
        scores = self.statistic(service_probs, verifier_probs)
        if scores.shape != (service_probs.shape[0],):
            raise DistillArgumentError(
                f"statistic returned shape {tuple(scores.shape)}, expected one score per request"
            )
        return scores.double()

    def flags(self, service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
        """Boolean flag per request: True when the answer is suspicious."""
        threshold = self.threshold
        return self.scores(service_probs, verifier_probs) > threshold

    def decide_batch(
        self,
        service_probs: torch.Tensor,
        verifier_probs: torch.Tensor,
        batch_alpha: float = 0.01,
    ) -> BatchDecision:
        """Flag each request, and test whether the batch has too many flags for clean traffic."""
        batch_alpha = check_rate("batch_alpha", batch_alpha)
        threshold = self.threshold
        scores = self.scores(service_probs, verifier_probs)
        flags = scores > threshold
        flagged = int(flags.sum())
        p_value = float(stats.binom.sf(flagged - 1, int(flags.shape[0]), self.fpr))
        return BatchDecision(scores, flags, flagged, p_value, p_value < batch_alpha)
