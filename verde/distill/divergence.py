"""Per-request divergence between the service's and the verifier's output distributions.

Fides (Kumar et al., ASIA CCS 2024) scores each answer by the cross-entropy between the
service's output and the verifier's; we offer that, the KL divergence (cross-entropy minus the
service's own entropy, so a confident honest answer and an uncertain one are scored alike), the
verifier's surprise at the served label, and the top-k rank statistic (where the service's top
class sits in the verifier's ranking: 0 when they agree, k when the service's label is outside
the verifier's top k).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from verde.distill._checks import check_probabilities, check_same_requests
from verde.distill.errors import DistillArgumentError

_LOG_FLOOR = 1e-12

Statistic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
    """H(p_service, p_verifier) = -sum_c p_service[c] log p_verifier[c], per request."""
    return -(service_probs * verifier_probs.clamp_min(_LOG_FLOOR).log()).sum(dim=1)


def kl_divergence(service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
    """KL(p_service || p_verifier), per request."""
    log_ratio = (
        service_probs.clamp_min(_LOG_FLOOR).log() - verifier_probs.clamp_min(_LOG_FLOOR).log()
    )
    return (service_probs * log_ratio).sum(dim=1)


def label_surprise(service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
    """-log p_verifier(service's predicted class): how unlikely the served label is to the
    verifier. Unlike cross-entropy it scores a label flip the same however much probability
    the service left on its old top class (top-2 averaging is scored like a swap)."""
    label = service_probs.argmax(dim=1, keepdim=True)
    return -verifier_probs.gather(1, label).squeeze(1).clamp_min(_LOG_FLOOR).log()


def top_k_rank(service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
    """Rank (0 = top) of the service's predicted class in the verifier's ordering, as float."""
    label = service_probs.argmax(dim=1, keepdim=True)
    label_prob = verifier_probs.gather(1, label)
    return (verifier_probs > label_prob).sum(dim=1).to(service_probs.dtype)


STATISTICS: dict[str, Statistic] = {
    "cross_entropy": cross_entropy,
    "kl": kl_divergence,
    "label_surprise": label_surprise,
    "top_k_rank": top_k_rank,
}


def divergence(
    service_probs: torch.Tensor, verifier_probs: torch.Tensor, statistic: str = "cross_entropy"
) -> torch.Tensor:
    """Score every request with the named statistic (higher means more suspicious)."""
    if statistic not in STATISTICS:
        raise DistillArgumentError(
            f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}"
        )
    check_probabilities("service_probs", service_probs)
    check_probabilities("verifier_probs", verifier_probs)
    check_same_requests("service_probs", service_probs, "verifier_probs", verifier_probs)
    return STATISTICS[statistic](service_probs.double(), verifier_probs.double())
