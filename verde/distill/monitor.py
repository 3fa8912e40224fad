"""A running monitor that catches a provider cheating on a small fraction of requests.

Each request's flag is a Bernoulli variable: with an honest provider its rate is the detector's
calibrated false-positive rate ``p0``; a provider that cheats on a fraction ``c`` of requests,
detected with probability ``d``, raises it to about ``p0 + c d``. Page's CUSUM (E. S. Page,
"Continuous inspection schemes", Biometrika 1954) accumulates the log-likelihood ratio of the
alternative rate ``p1`` against ``p0``,

    S_t = max(0, S_{t-1} + log(p1/p0))          if request t is flagged,
    S_t = max(0, S_{t-1} + log((1-p1)/(1-p0)))  otherwise,

and alarms when S_t >= h. Because CUSUM restarts a one-sided Wald SPRT (Wald, "Sequential
Analysis", 1947) after each return to zero, each restart crosses h under the null with
probability at most e^{-h}, so the average run length to a false alarm is at least e^h (Lorden,
"Procedures for reacting to a change in distribution", Ann. Math. Statist. 1971). Choosing
h = log(ARL0) therefore bounds false alarms on clean traffic by one per ARL0 requests.

The null rate should be the clean flag rate the detector really has, which a finite
calibration set knows only up to sampling error; :meth:`CusumMonitor.for_detector` takes an
upper confidence bound on it (see :meth:`DivergenceDetector.flag_rate_bound`) rather than the
nominal target, trading a slightly later alarm for false alarms that stay as rare as promised.

A sliding window of the last ``window`` flags is kept alongside for reporting.
"""

from __future__ import annotations

import math
from collections import deque

import torch

from verde.distill._checks import check_positive, check_positive_int, check_rate
from verde.distill.detector import DivergenceDetector
from verde.distill.errors import DistillArgumentError


class CusumMonitor:
    """Bernoulli CUSUM over per-request flags, null rate ``null_rate``, alternative ``alt_rate``."""

    def __init__(
        self,
        null_rate: float,
        alt_rate: float,
        arl0: float = 10_000.0,
        window: int = 1000,
    ) -> None:
        self.null_rate = check_rate("null_rate", null_rate)
        self.alt_rate = check_rate("alt_rate", alt_rate)
        if self.alt_rate <= self.null_rate:
            raise DistillArgumentError(
                f"alt_rate ({alt_rate}) must exceed null_rate ({null_rate}): the monitor looks "
                "for more flags than clean traffic produces"
            )
        arl0 = check_positive("arl0", arl0)
        if arl0 <= 1.0:
            raise DistillArgumentError(f"arl0 must exceed 1 request, got {arl0}")
        self.threshold = math.log(arl0)
        self._up = math.log(self.alt_rate / self.null_rate)
        self._down = math.log((1.0 - self.alt_rate) / (1.0 - self.null_rate))
        self._window: deque[bool] = deque(maxlen=check_positive_int("window", window))
        self.statistic = 0.0
        self.requests = 0
        self.alarm_at: int | None = None

    @classmethod
    def for_detector(
        cls,
        detector: DivergenceDetector,
        cheat_fraction: float,
        *,
        detection_rate: float = 0.9,
        arl0: float = 10_000.0,
        confidence: float = 0.95,
        window: int = 1000,
    ) -> CusumMonitor:
        """A monitor for ``detector``'s flags, tuned to catch cheating on ``cheat_fraction`` of
        requests of which ``detection_rate`` are flagged.

        The null rate is the detector's ``confidence`` upper bound on its clean flag rate, and
        the alternative adds ``cheat_fraction * detection_rate`` to it.
        """
        check_rate("cheat_fraction", cheat_fraction)
        if (
            isinstance(detection_rate, bool)
            or not isinstance(detection_rate, int | float)
            or not 0.0 < detection_rate <= 1.0
        ):
            raise DistillArgumentError(f"detection_rate must lie in (0, 1], got {detection_rate!r}")
        null_rate = detector.flag_rate_bound(confidence)
        alt_rate = null_rate + cheat_fraction * detection_rate
        if alt_rate >= 1.0:
            raise DistillArgumentError(
                f"cheat_fraction * detection_rate ({cheat_fraction * detection_rate:.3f}) on top "
                f"of the clean flag rate bound ({null_rate:.3f}) leaves no room below 1"
            )
        return cls(null_rate, alt_rate, arl0=arl0, window=window)

    @property
    def alarmed(self) -> bool:
        """Whether the statistic has crossed the threshold (it stays alarmed until reset)."""
        return self.alarm_at is not None

    @property
    def window_rate(self) -> float:
        """Fraction of flagged requests among the last ``window`` requests seen."""
        return sum(self._window) / len(self._window) if self._window else 0.0

    def update(self, flags: torch.Tensor | list[bool]) -> bool:
        """Feed per-request flags in arrival order; returns whether the monitor has alarmed."""
        if isinstance(flags, torch.Tensor):
            if flags.ndim != 1:
                raise DistillArgumentError(
                    f"flags must be one-dimensional, got shape {tuple(flags.shape)}"
                )
            flags = [bool(f) for f in flags.tolist()]
        for flag in flags:
            self.requests += 1
            self._window.append(bool(flag))
            self.statistic = max(0.0, self.statistic + (self._up if flag else self._down))
            if self.alarm_at is None and self.statistic >= self.threshold:
                self.alarm_at = self.requests
        return self.alarmed

    def reset(self) -> None:
        """Forget everything seen (after an alarm has been dealt with)."""
        self.statistic, self.requests, self.alarm_at = 0.0, 0, None
        self._window.clear()
