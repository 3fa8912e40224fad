"""The CUSUM monitor: rare false alarms on clean flags, fast alarms on partial cheating."""

from __future__ import annotations

import math

import pytest
import torch

from verde.distill.attacks import FractionalAttack
from verde.distill.detector import DivergenceDetector
from verde.distill.digits import DigitsSetup
from verde.distill.errors import DistillArgumentError, NotTrainedError
from verde.distill.evaluation import stream_until_alarm
from verde.distill.monitor import CusumMonitor

FPR = 0.01
ALT = FPR + 0.9 * 0.05  # tuned to catch cheating on >= 5% of requests


def _stream(rate: float, n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) < rate


def test_threshold_is_log_arl0() -> None:
    assert math.isclose(CusumMonitor(FPR, ALT, arl0=10_000).threshold, math.log(10_000))


def test_clean_flag_streams_rarely_alarm() -> None:
    # Lorden (1971): ARL0 >= e^h = 10_000, so P(alarm within 2000) is about 1 - e^{-0.2} = 0.18
    # at most; we allow 0.28 over 100 streams.
    alarms = 0
    for seed in range(100):
        monitor = CusumMonitor(FPR, ALT, arl0=10_000)
        alarms += monitor.update(_stream(FPR, 2000, seed))
    assert alarms / 100 <= 0.28


def test_partial_cheating_streams_alarm_quickly() -> None:
    # A provider cheating on 5% of requests, 98% of which are flagged.
    rate = FPR + 0.05 * 0.98
    delays = []
    for seed in range(100):
        monitor = CusumMonitor(FPR, ALT, arl0=10_000)
        monitor.update(_stream(rate, 2000, seed))
        delays.append(monitor.alarm_at if monitor.alarmed else 10**9)
    delays.sort()
    assert delays[int(0.95 * 100)] <= 600


def test_reset_and_window() -> None:
    monitor = CusumMonitor(FPR, ALT, arl0=100, window=10)
    monitor.update([True] * 10)
    assert monitor.alarmed and monitor.window_rate == 1.0
    monitor.reset()
    assert not monitor.alarmed and monitor.requests == 0 and monitor.statistic == 0.0


def test_monitor_catches_provider_cheating_on_5_percent(digits: DigitsSetup, attacks: dict) -> None:
    for name in ("top2_swap", "random_label_switch"):
        monitor = CusumMonitor.for_detector(digits.detector, 0.05, arl0=10_000)
        alarm = stream_until_alarm(
            monitor,
            FractionalAttack(attacks[name], 0.05),
            service=digits.service,
            verifier=digits.verifier,
            detector=digits.detector,
            x=digits.splits.test.x,
            max_requests=3000,
        )
        assert alarm is not None and alarm <= 1500, (name, alarm)


def test_monitor_stays_quiet_on_clean_traffic(digits: DigitsSetup) -> None:
    monitor = CusumMonitor.for_detector(digits.detector, 0.05, arl0=10_000)
    alarm = stream_until_alarm(
        monitor,
        None,
        service=digits.service,
        verifier=digits.verifier,
        detector=digits.detector,
        x=digits.splits.test.x,
        max_requests=3000,
    )
    assert alarm is None
    assert monitor.requests >= 3000


def test_monitor_for_detector_assumes_the_clean_rate_bound(digits: DigitsSetup) -> None:
    detector = digits.detector
    monitor = CusumMonitor.for_detector(detector, 0.05, detection_rate=1.0, confidence=0.9)
    assert monitor.null_rate == detector.flag_rate_bound(0.9) > detector.fpr
    assert math.isclose(monitor.alt_rate, monitor.null_rate + 0.05)


def test_clean_rate_above_target_alarms_the_nominal_monitor_not_the_bounded_one() -> None:
    # Clean flags at 2%: a calibration draw that landed high (449 calibration requests, target
    # 1%; digits seed 1 realises 2.0% on its test split). A monitor that assumes exactly 1%
    # alarms within 5000 clean requests in most streams (about 60% by simulation); one that
    # assumes the 95% bound (about 1.7%) does so in about 3%.
    from scipy import stats

    bound = float(stats.beta.ppf(0.95, 4, 446))
    nominal_alarms = bounded_alarms = 0
    for seed in range(40):
        flags = _stream(0.02, 5000, seed)
        nominal_alarms += CusumMonitor(FPR, ALT, arl0=10_000).update(flags)
        bounded_alarms += CusumMonitor(bound, bound + 0.045, arl0=10_000).update(flags)
    assert nominal_alarms >= 15, nominal_alarms
    assert bounded_alarms <= 5, bounded_alarms


def test_monitor_for_detector_arguments(digits: DigitsSetup) -> None:
    with pytest.raises(DistillArgumentError, match="cheat_fraction"):
        CusumMonitor.for_detector(digits.detector, 0.0)
    with pytest.raises(DistillArgumentError, match="detection_rate"):
        CusumMonitor.for_detector(digits.detector, 0.05, detection_rate=1.5)
    with pytest.raises(DistillArgumentError, match="no room below 1"):
        CusumMonitor.for_detector(digits.detector, 0.999, detection_rate=1.0)
    with pytest.raises(NotTrainedError):
        CusumMonitor.for_detector(DivergenceDetector(), 0.05)
