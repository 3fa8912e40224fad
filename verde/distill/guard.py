"""Real-time checking of an inference service's answers, with escalation of flagged ones.

This is the client side of Fides (Kumar et al., ASIA CCS 2024) wired to refereed delegation:
every answer is compared with a distilled verifier's by a calibrated divergence test; a flagged
answer gets an immediate best estimate from the re-classifier, and, when a second provider and
a referee are configured, is re-run and, on mismatch, settled by a dispute, so the caller gets
the verified answer (over verde providers and an arbiter:
``arbiter.refereed_escalation.RefereedEscalation``). Flags also feed a running CUSUM monitor
(see :mod:`verde.distill.monitor`) that catches a provider cheating on a small fraction of
requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from verde.distill._checks import check_batch_match, check_probabilities, check_rate
from verde.distill.detector import BatchDecision, DivergenceDetector
from verde.distill.distillation import DistilledVerifier
from verde.distill.errors import DistillArgumentError, ShapeMismatchError
from verde.distill.escalation import DisputeOpener, InferenceRequest, SecondOpinion
from verde.distill.monitor import CusumMonitor
from verde.distill.reclassify import Reclassifier, VerifierReclassifier


@dataclass
class CheckedBatch:
    """What :meth:`VerifiedInference.check` concluded about one batch of answers.

    ``answers`` holds the service's answer for unflagged requests and the verified answer for
    escalated ones; ``estimates`` is the label of the verified answer for escalated requests, the
    re-classifier's label for flagged ones that were not escalated, the service's otherwise;
    ``overturned`` lists requests whose service answer lost a dispute.
    """

    answers: torch.Tensor
    estimates: torch.Tensor
    decision: BatchDecision
    escalated: list[int] = field(default_factory=list)
    overturned: list[int] = field(default_factory=list)
    monitor_alarm: bool = False

    @property
    def flags(self) -> torch.Tensor:
        """Per-request flags of the detector."""
        return self.decision.flags


class VerifiedInference:
    """Check service answers against a verifier; escalate what looks wrong."""

    def __init__(
        self,
        verifier: DistilledVerifier,
        detector: DivergenceDetector,
        *,
        reclassifier: Reclassifier | None = None,
        second_opinion: SecondOpinion | None = None,
        dispute: DisputeOpener | None = None,
        monitor: CusumMonitor | None = None,
        batch_alpha: float = 0.01,
    ) -> None:
        if (second_opinion is None) != (dispute is None):
            raise DistillArgumentError(
                "escalation needs both second_opinion and dispute, or neither"
            )
        if second_opinion is not None and not isinstance(second_opinion, SecondOpinion):
            raise DistillArgumentError("second_opinion must have a rerun(inputs) method")
        if dispute is not None and not isinstance(dispute, DisputeOpener):
            raise DistillArgumentError("dispute must have a settle(request, a, b) method")
        self.verifier = verifier
        self.detector = detector
        self.reclassifier = reclassifier or VerifierReclassifier()
        self.second_opinion = second_opinion
        self.dispute = dispute
        self.monitor = monitor
        self.batch_alpha = check_rate("batch_alpha", batch_alpha)
        self._seen = 0

    def _matches(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        matcher = getattr(self.dispute, "matches", None)
        if callable(matcher):
            return bool(matcher(a, b))
        return bool(torch.equal(a, b))

    def check(self, inputs: torch.Tensor, service_probs: torch.Tensor) -> CheckedBatch:
        """Check a batch of service answers (softmax rows) to ``inputs``."""
        check_probabilities("service_probs", service_probs)
        check_batch_match("inputs", inputs, "service_probs", service_probs)
        verifier_probs = self.verifier.probs(inputs)
        if verifier_probs.shape != service_probs.shape:
            raise ShapeMismatchError(
                f"service answers have {service_probs.shape[1]} classes but the verifier has "
                f"{verifier_probs.shape[1]}"
            )
        decision = self.detector.decide_batch(service_probs, verifier_probs, self.batch_alpha)
        flagged = decision.flags.nonzero().flatten()
        estimates = service_probs.argmax(1)
        if flagged.numel():
            estimates[flagged] = self.reclassifier.predict(
                service_probs[flagged], verifier_probs[flagged]
            )
        answers = service_probs.clone()
        escalated: list[int] = []
        overturned: list[int] = []
        if self.second_opinion is not None and self.dispute is not None and flagged.numel():
            second = self.second_opinion.rerun(inputs[flagged])
            check_probabilities("second opinion answers", second)
            check_batch_match("flagged inputs", inputs[flagged], "second opinion answers", second)
            for row, i in enumerate(flagged.tolist()):
                escalated.append(i)
                service_answer = service_probs[i : i + 1]
                other = second[row : row + 1]
                if not self._matches(service_answer, other):
                    request = InferenceRequest(self._seen + i, inputs[i : i + 1])
                    verified = self.dispute.settle(request, service_answer, other)
                    answers[i] = verified[0]
                    if not self._matches(verified, service_answer):
                        overturned.append(i)
                estimates[i] = answers[i].argmax()
        self._seen += int(inputs.shape[0])
        alarm = self.monitor.update(decision.flags) if self.monitor is not None else False
        return CheckedBatch(answers, estimates, decision, escalated, overturned, alarm)
