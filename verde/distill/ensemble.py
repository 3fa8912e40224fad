"""An ensemble of distilled students used as one verifier (its outputs are the members' mean).

Detection is limited by the inputs on which the verifier and the service disagree: a top-2 swap
on an input where the verifier already prefers the service's runner-up serves exactly the label
the verifier expects, and clean disagreements push the calibrated threshold up. Averaging the
softmax outputs of a few independently initialised students (Lakshminarayanan et al., "Simple
and Scalable Predictive Uncertainty Estimation using Deep Ensembles", NeurIPS 2017) removes much
of each student's idiosyncratic error, so the ensemble agrees with the service more often than
any one member, at a cost that stays a small fraction of the service's (the members' FLOPs
add). Each member is distilled by the greedy layer-wise schedule of Fides (Kumar et al., ASIA
CCS 2024) exactly as a single verifier would be.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from verde.distill.distillation import DistillConfig, DistilledVerifier, distill_verifier
from verde.distill.errors import DistillArgumentError
from verde.distill.models import predict_probs

_LOG_FLOOR = 1e-12


class StudentEnsemble(nn.Module):
    """Returns log of the mean of the members' softmax outputs, so softmax of it is that mean."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise DistillArgumentError("an ensemble needs at least one member model")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x), dim=1) for m in self.members]).mean(dim=0)
        return probs.clamp_min(_LOG_FLOOR).log()


def distill_ensemble(
    students: Sequence[nn.Module],
    x: torch.Tensor,
    val_x: torch.Tensor,
    *,
    service: nn.Module,
    labels: torch.Tensor | None = None,
    config: DistillConfig | None = None,
) -> DistilledVerifier:
    """Distil every student (in place) from ``service`` and return their ensemble as a verifier.

    Member ``i`` uses ``config`` with its seed shifted by ``i`` (its own augmentation pool and
    batch order); give students with different initial weights. The returned verifier's
    ``members`` are the per-student verifiers (with their stage reports) and its
    ``val_agreement`` is the ensemble's agreement with the service on ``val_x``.
    """
    if not students:
        raise DistillArgumentError("students must contain at least one model")
    config = config or DistillConfig()
    members = [
        distill_verifier(
            student,
            x,
            val_x,
            service=service,
            labels=labels,
            config=dataclasses.replace(config, seed=config.seed + i),
        )
        for i, student in enumerate(students)
    ]
    untrained = [i for i, m in enumerate(members) if not m.trained]
    if untrained:
        raise DistillArgumentError(
            f"ensemble members {untrained} did not improve on their initial weights in any "
            "distillation stage; use other students or a different config"
        )
    model = StudentEnsemble([m.model for m in members]).eval()
    agreement = float(
        (predict_probs(model, val_x).argmax(1) == predict_probs(service, val_x).argmax(1))
        .float()
        .mean()
    )
    return DistilledVerifier(model=model, members=members, trained=True, agreement=agreement)
