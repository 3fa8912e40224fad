"""Measure how well a calibrated detector and a re-classifier handle an attack.

Shared by the tests and ``bench/distill_bench.py`` so that both report the same quantities: the
fraction of label-changing answers that are flagged (detection rate), the same among the answers
the change made wrong (a "swap" of a wrong honest answer can land on the true label), the
fraction of all attacked answers that are flagged, and how often the re-classifier recovers the
true label of a flagged, label-changed answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from verde.distill._checks import check_batch_match, check_positive_int
from verde.distill.attacks import Attack
from verde.distill.detector import DivergenceDetector
from verde.distill.distillation import DistilledVerifier
from verde.distill.models import predict_probs
from verde.distill.monitor import CusumMonitor
from verde.distill.reclassify import Reclassifier


@dataclass(frozen=True)
class AttackReport:
    """Outcome of one attack on a set of requests (rates are NaN when undefined)."""

    attack: str
    label_changing: bool
    requests: int
    changed: int
    flag_rate: float
    detection_rate: float
    harmful_detection_rate: float
    reclassification_accuracy: float


def _rate(hits: torch.Tensor) -> float:
    return float(hits.float().mean()) if hits.numel() else math.nan


def evaluate_attack(
    attack: Attack,
    *,
    service: nn.Module,
    verifier: DistilledVerifier,
    detector: DivergenceDetector,
    reclassifier: Reclassifier,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int = 0,
) -> AttackReport:
    """Run ``attack`` on requests ``x`` (true labels ``y``) and score detection and recovery."""
    check_batch_match("x", x, "y", y)
    generator = torch.Generator().manual_seed(seed)
    requests = attack.requests(x)
    honest = predict_probs(service, requests)
    served = attack.serve(requests, honest, generator)
    verifier_probs = verifier.probs(requests)
    flags = detector.flags(served, verifier_probs)
    changed = served.argmax(1) != honest.argmax(1)
    harmful = changed & (served.argmax(1) != y)
    recovered = flags & changed
    if recovered.any():
        fixed = reclassifier.predict(served[recovered], verifier_probs[recovered])
        accuracy = _rate(fixed == y[recovered])
    else:
        accuracy = math.nan
    return AttackReport(
        attack=attack.name,
        label_changing=attack.label_changing,
        requests=int(x.shape[0]),
        changed=int(changed.sum()),
        flag_rate=_rate(flags),
        detection_rate=_rate(flags[changed]),
        harmful_detection_rate=_rate(flags[harmful]),
        reclassification_accuracy=accuracy,
    )


def stream_until_alarm(
    monitor: CusumMonitor,
    attack: Attack | None,
    *,
    service: nn.Module,
    verifier: DistilledVerifier,
    detector: DivergenceDetector,
    x: torch.Tensor,
    max_requests: int = 5000,
    batch_size: int = 50,
    seed: int = 0,
) -> int | None:
    """Feed a stream of requests drawn from ``x`` through the detector into ``monitor``.

    ``attack=None`` is an honest provider. Returns the request count at which the monitor
    alarmed, or None if it did not within ``max_requests``.
    """
    check_positive_int("max_requests", max_requests)
    check_positive_int("batch_size", batch_size)
    generator = torch.Generator().manual_seed(seed)
    requests_x = attack.requests(x) if attack is not None else x
    honest_all = predict_probs(service, requests_x)
    verifier_all = verifier.probs(requests_x)
    while monitor.requests < max_requests and not monitor.alarmed:
        ids = torch.randint(0, x.shape[0], (batch_size,), generator=generator)
        honest = honest_all[ids]
        served = honest if attack is None else attack.serve(requests_x[ids], honest, generator)
        monitor.update(detector.flags(served, verifier_all[ids]))
    return monitor.alarm_at
