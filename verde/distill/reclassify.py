"""Re-classification: the best estimate of the right answer for a flagged request.

Fides (Kumar et al., ASIA CCS 2024) pairs its detector with a re-classifier that recovers the
correct label of a tampered answer. Two candidates are offered: the verifier's own prediction,
and a small learned re-classifier on [service output, verifier output] trained on the client's
labelled data with simulated output attacks (it can learn, e.g., that a swapped answer's true
label is the service's runner-up). :func:`choose_reclassifier` keeps whichever measures better
on held-out attacked data, as the issue asks, rather than assuming one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from verde.distill._checks import (
    check_batch_match,
    check_positive_int,
    check_probabilities,
    check_same_requests,
)
from verde.distill.attacks import OutputTamper
from verde.distill.errors import DistillArgumentError, NotTrainedError


class Reclassifier:
    """Maps (service output, verifier output) of flagged requests to a corrected label."""

    name: str

    def predict(self, service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
        """Corrected class index for every request."""
        raise NotImplementedError


def _check_pair(service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> None:
    check_probabilities("service_probs", service_probs)
    check_probabilities("verifier_probs", verifier_probs)
    check_same_requests("service_probs", service_probs, "verifier_probs", verifier_probs)


class VerifierReclassifier(Reclassifier):
    """Trust the verifier: its top class is the corrected answer."""

    name = "verifier"

    def predict(self, service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
        _check_pair(service_probs, verifier_probs)
        return verifier_probs.argmax(dim=1)


class LearnedReclassifier(Reclassifier):
    """A two-layer MLP on the concatenated log-probabilities of service and verifier."""

    name = "learned"

    def __init__(self, classes: int, hidden: int = 64, seed: int = 0) -> None:
        check_positive_int("classes", classes)
        check_positive_int("hidden", hidden)
        self.classes = classes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = nn.Sequential(
                nn.Linear(2 * classes, hidden), nn.ReLU(), nn.Linear(hidden, classes)
            )
        self.seed = seed
        self.trained = False

    def _features(self, service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [service_probs.clamp_min(1e-6).log(), verifier_probs.clamp_min(1e-6).log()], dim=1
        ).float()

    def fit(
        self,
        service_probs: torch.Tensor,
        verifier_probs: torch.Tensor,
        labels: torch.Tensor,
        tampers: Sequence[OutputTamper],
        *,
        epochs: int = 60,
        lr: float = 3e-3,
    ) -> LearnedReclassifier:
        """Train on clean pairs plus one tampered copy per entry of ``tampers``."""
        _check_pair(service_probs, verifier_probs)
        check_batch_match("service_probs", service_probs, "labels", labels)
        check_positive_int("epochs", epochs)
        if service_probs.shape[1] != self.classes:
            raise DistillArgumentError(
                f"re-classifier was built for {self.classes} classes, got {service_probs.shape[1]}"
            )
        generator = torch.Generator().manual_seed(self.seed)
        served = [service_probs] + [t(service_probs, generator) for t in tampers]
        feats = torch.cat([self._features(s, verifier_probs) for s in served])
        targets = labels.long().repeat(len(served))
        optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.model.train()
        for _ in range(epochs):
            order = torch.randperm(feats.shape[0], generator=generator)
            for start in range(0, feats.shape[0], 128):
                ids = order[start : start + 128]
                loss = nn.functional.cross_entropy(self.model(feats[ids]), targets[ids])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self.model.eval()
        self.trained = True
        return self

    @torch.no_grad()
    def predict(self, service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
        if not self.trained:
            raise NotTrainedError("learned re-classifier is not trained; call fit(...) first")
        _check_pair(service_probs, verifier_probs)
        return self.model(self._features(service_probs, verifier_probs)).argmax(dim=1)


def reclassification_accuracy(
    reclassifier: Reclassifier,
    service_probs: torch.Tensor,
    verifier_probs: torch.Tensor,
    labels: torch.Tensor,
) -> float:
    """Fraction of requests whose corrected label equals the true label."""
    check_batch_match("service_probs", service_probs, "labels", labels)
    if labels.shape[0] == 0:
        raise DistillArgumentError("need at least one request to measure accuracy on")
    predicted = reclassifier.predict(service_probs, verifier_probs)
    return float((predicted == labels).float().mean())


def choose_reclassifier(
    candidates: Sequence[Reclassifier],
    service_probs: torch.Tensor,
    verifier_probs: torch.Tensor,
    labels: torch.Tensor,
    *,
    tampers: Sequence[OutputTamper],
    seed: int = 0,
) -> tuple[Reclassifier, dict[str, float]]:
    """Pick the candidate with the best accuracy on held-out tampered answers.

    Returns the winner and every candidate's measured accuracy (ties go to the earlier one).
    """
    if not candidates:
        raise DistillArgumentError("candidates must name at least one re-classifier")
    if not tampers:
        raise DistillArgumentError("tampers must name at least one simulated attack")
    generator = torch.Generator().manual_seed(seed)
    served = torch.cat([t(service_probs, generator) for t in tampers])
    verifier = verifier_probs.repeat(len(tampers), 1)
    truth = labels.repeat(len(tampers))
    scores = {c.name: reclassification_accuracy(c, served, verifier, truth) for c in candidates}
    best = max(candidates, key=lambda c: scores[c.name])
    return best, scores
