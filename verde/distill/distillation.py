"""Greedy layer-wise distillation of a small verifier from a service model (after Fides).

Fides (Kumar et al., "Fides: A Generative Framework for Result Validation of Outsourced Machine
Learning Workloads via TEE", ASIA CCS 2024) distils a compact verifier from the service model by
*greedy distillation transfer learning*: the student's layers are unfrozen from the top down, one
more per stage, and each stage trains on the temperature-scaled soft labels of the service
(Hinton et al., 2015) plus the hard labels. We keep that schedule: stage k trains the top k
parametrised layers, each stage stops early when agreement with the service on a validation set
stops improving (its best weights are restored), and a stage is kept only if it improved on the
previous one (the greedy step). When the service model itself is at hand, the transfer set is
widened with generated inputs the service labels (jittered copies, blends and inputs walked
towards the service's decision boundaries; see :mod:`verde.distill.transfer`): each epoch trains
on the client's inputs plus a few of those generated batches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from verde.distill._checks import (
    check_batch_match,
    check_non_negative_int,
    check_positive,
    check_positive_int,
    check_probabilities,
    check_rate,
)
from verde.distill.errors import DistillArgumentError, NotTrainedError
from verde.distill.models import predict_probs
from verde.distill.transfer import check_transfer_kinds, transfer_copies

_LOG_FLOOR = 1e-12
# Offset of the random stream that generates validation copies from the training stream's seed.
_VALIDATION_STREAM = 104_729


@dataclass(frozen=True)
class DistillConfig:
    """Hyper-parameters of greedy distillation.

    ``soft_weight`` weighs the T^2-scaled soft-label KL term against the hard-label
    cross-entropy; ``patience`` is how many epochs without better validation agreement end a
    stage; ``augment`` queries the service on ``augment_copies`` generated copies of the inputs
    (needs the service model), the generators in ``transfer`` taking turns (see
    :mod:`verde.distill.transfer`), and ``copies_per_epoch`` of those copies join the plain
    inputs in each epoch; a fraction ``patch_prob`` of the jittered and boundary copies also get
    a random occluding patch. ``val_copies`` generated copies of the validation inputs (same
    generators, labelled by the service, drawn from a stream of their own so that they do not
    change the training copies) join the validation set that early stopping measures agreement
    on, when ``augment`` is on and the service model is given; 0 keeps the plain validation
    inputs.
    """

    temperature: float = 4.0
    soft_weight: float = 0.8
    lr: float = 3e-3
    batch_size: int = 64
    max_epochs_per_stage: int = 40
    patience: int = 6
    augment: bool = True
    augment_copies: int = 64
    copies_per_epoch: int = 8
    val_copies: int = 16
    transfer: tuple[str, ...] = ("jitter", "boundary_random", "boundary_runner_up", "mixup_near")
    patch_prob: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("temperature", self.temperature)
        check_rate("soft_weight", self.soft_weight)
        check_positive("lr", self.lr)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("max_epochs_per_stage", self.max_epochs_per_stage)
        check_positive_int("patience", self.patience)
        check_positive_int("augment_copies", self.augment_copies)
        check_positive_int("copies_per_epoch", self.copies_per_epoch)
        check_non_negative_int("val_copies", self.val_copies)
        if self.copies_per_epoch > self.augment_copies:
            raise DistillArgumentError(
                f"copies_per_epoch ({self.copies_per_epoch}) cannot exceed augment_copies "
                f"({self.augment_copies})"
            )
        check_transfer_kinds(self.transfer)
        if not 0.0 <= self.patch_prob <= 1.0:
            raise DistillArgumentError(f"patch_prob must lie in [0, 1], got {self.patch_prob}")


@dataclass(frozen=True)
class StageReport:
    """What one unfreezing stage did: how many top layers trained, for how long, how well."""

    trainable_layers: int
    epochs: int
    val_agreement: float
    val_soft_loss: float
    kept: bool


@dataclass
class DistilledVerifier:
    """A trained verifier: the student model plus how it was obtained.

    Use :meth:`probs` for its softmax outputs; an untrained verifier raises
    :class:`NotTrainedError` rather than returning the guesses of random weights. An ensemble
    verifier lists its per-student verifiers in ``members`` and has no stages of its own.
    """

    model: nn.Module
    stages: list[StageReport] = field(default_factory=list)
    trained: bool = False
    members: list[DistilledVerifier] = field(default_factory=list)
    agreement: float | None = None

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """The verifier's output distribution on ``x`` (eval mode, no gradients)."""
        if not self.trained:
            raise NotTrainedError(
                "this verifier has not been trained (call distill_verifier(...) first; if you "
                "did, no distillation stage improved agreement on the initial weights)"
            )
        return predict_probs(self.model, x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The verifier's predicted class for each input."""
        return self.probs(x).argmax(dim=1)

    @property
    def val_agreement(self) -> float:
        """Agreement with the service on the validation set after the last kept stage (for an
        ensemble from :func:`verde.distill.ensemble.distill_ensemble`: the ensemble's)."""
        if self.agreement is not None:
            return self.agreement
        kept = [s for s in self.stages if s.kept]
        if not kept:
            raise NotTrainedError("this verifier has no kept distillation stage")
        return kept[-1].val_agreement


def parametrised_layers(model: nn.Module) -> list[nn.Module]:
    """Leaf modules that own parameters, in forward (registration) order."""
    return [
        m
        for m in model.modules()
        if not list(m.children()) and any(True for _ in m.parameters(recurse=False))
    ]


def _soft_targets(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(torch.log(probs.clamp_min(_LOG_FLOOR)) / temperature, dim=1)


def _distill_loss(
    logits: torch.Tensor, soft: torch.Tensor, hard: torch.Tensor, config: DistillConfig
) -> torch.Tensor:
    t = config.temperature
    log_student = torch.log_softmax(logits / t, dim=1)
    soft_loss = nn.functional.kl_div(log_student, soft, reduction="batchmean") * (t * t)
    hard_loss = nn.functional.cross_entropy(logits, hard)
    return config.soft_weight * soft_loss + (1.0 - config.soft_weight) * hard_loss


@torch.no_grad()
def _validate(
    student: nn.Module, x: torch.Tensor, teacher_probs: torch.Tensor
) -> tuple[float, float]:
    student_probs = predict_probs(student, x)
    agreement = float((student_probs.argmax(1) == teacher_probs.argmax(1)).float().mean())
    kl = float(
        (
            teacher_probs
            * (
                teacher_probs.clamp_min(_LOG_FLOOR).log()
                - student_probs.clamp_min(_LOG_FLOOR).log()
            )
        )
        .sum(1)
        .mean()
    )
    return agreement, kl


def validation_inputs(
    val_x: torch.Tensor, service: nn.Module, config: DistillConfig
) -> torch.Tensor:
    """The inputs early stopping measures agreement on: ``val_x`` followed by
    ``config.val_copies`` generated copies of it (see :class:`DistillConfig`).

    The copies come from a random stream of their own, seeded from ``config.seed``, so the same
    config gives the same validation set and the training copies do not depend on it.
    """
    generator = torch.Generator().manual_seed(config.seed + _VALIDATION_STREAM)
    widened = transfer_copies(
        val_x, service, config.transfer, config.val_copies, generator, patch_prob=config.patch_prob
    )
    return torch.cat([val_x] + [extra for _, extra in widened])


def distill_verifier(
    student: nn.Module,
    x: torch.Tensor,
    val_x: torch.Tensor,
    *,
    service: nn.Module | None = None,
    service_probs: torch.Tensor | None = None,
    val_service_probs: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    config: DistillConfig | None = None,
    on_stage: Callable[[StageReport, nn.Module], None] | None = None,
) -> DistilledVerifier:
    """Distil ``student`` (trained in place) from the service and return the verifier.

    Give either ``service`` (the model: its outputs are queried, and generated inputs are added
    when ``config.augment``) or ``service_probs`` and ``val_service_probs`` (only the service's
    softmax outputs on ``x`` and ``val_x``). ``labels`` are the client's ground-truth labels for
    ``x``; without them the service's predictions serve as hard labels. ``on_stage`` is called
    after every stage with its report and the student (holding the best weights so far).
    """
    config = config or DistillConfig()
    if (service is None) == (service_probs is None):
        raise DistillArgumentError("give exactly one of service (a model) or service_probs")
    if service is None:
        if val_service_probs is None:
            raise DistillArgumentError("service_probs needs val_service_probs for early stopping")
        check_probabilities("service_probs", service_probs)
        check_probabilities("val_service_probs", val_service_probs)
        check_batch_match("x", x, "service_probs", service_probs)
        check_batch_match("val_x", val_x, "val_service_probs", val_service_probs)
        teacher_probs, val_teacher = service_probs, val_service_probs
    else:
        teacher_probs, val_teacher = predict_probs(service, x), predict_probs(service, val_x)
    if labels is not None:
        check_batch_match("x", x, "labels", labels)
        hard = labels.long()
    else:
        hard = teacher_probs.argmax(1)
    layers = parametrised_layers(student)
    if not layers:
        raise DistillArgumentError("student has no parametrised layers to train")
    with torch.no_grad():
        out = student(x[:1])
    if out.ndim != 2 or out.shape[1] != teacher_probs.shape[1]:
        raise DistillArgumentError(
            f"student outputs shape {tuple(out.shape)} per input batch of 1, but the service has "
            f"{teacher_probs.shape[1]} classes"
        )

    generator = torch.Generator().manual_seed(config.seed)
    soft = _soft_targets(teacher_probs, config.temperature)
    # A fixed pool of generated copies, each labelled by one query to the service; epochs cycle
    # through it, so the service is queried augment_copies times per input, not once per epoch.
    # Jittered copies keep the client's hard labels; the others take the service's prediction.
    pool: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    if service is not None and config.augment:
        for kind, extra in transfer_copies(
            x,
            service,
            config.transfer,
            config.augment_copies,
            generator,
            patch_prob=config.patch_prob,
        ):
            extra_probs = predict_probs(service, extra)
            extra_hard = hard if kind == "jitter" else extra_probs.argmax(1)
            pool.append((extra, _soft_targets(extra_probs, config.temperature), extra_hard))
        if config.val_copies:
            val_x = validation_inputs(val_x, service, config)
            val_teacher = predict_probs(service, val_x)
    best_score = _validate(student, val_x, val_teacher)
    best_state = copy.deepcopy(student.state_dict())
    stages: list[StageReport] = []
    for k in range(1, len(layers) + 1):
        trainable = {id(p) for layer in layers[-k:] for p in layer.parameters()}
        for p in student.parameters():
            p.requires_grad_(id(p) in trainable)
        params = [p for p in student.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=config.lr)
        stage_best, stage_state, stale, epochs = best_score, best_state, 0, 0
        for _ in range(config.max_epochs_per_stage):
            epochs += 1
            student.train()
            xs, ss, hs = x, soft, hard
            if pool:
                first = (epochs - 1) * config.copies_per_epoch
                picked = [pool[(first + j) % len(pool)] for j in range(config.copies_per_epoch)]
                xs = torch.cat([x] + [p[0] for p in picked])
                ss = torch.cat([soft] + [p[1] for p in picked])
                hs = torch.cat([hard] + [p[2] for p in picked])
            order = torch.randperm(xs.shape[0], generator=generator)
            for start in range(0, xs.shape[0], config.batch_size):
                ids = order[start : start + config.batch_size]
                loss = _distill_loss(student(xs[ids]), ss[ids], hs[ids], config)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            agreement, kl = _validate(student, val_x, val_teacher)
            if (agreement, -kl) > (stage_best[0], -stage_best[1]):
                stage_best, stale = (agreement, kl), 0
                stage_state = copy.deepcopy(student.state_dict())
            else:
                stale += 1
                if stale >= config.patience:
                    break
        kept = stage_state is not best_state
        if kept:
            best_score, best_state = stage_best, stage_state
        student.load_state_dict(best_state)
        stages.append(StageReport(k, epochs, best_score[0], best_score[1], kept))
        if on_stage is not None:
            on_stage(stages[-1], student)
    for p in student.parameters():
        p.requires_grad_(True)
    student.eval()
    return DistilledVerifier(model=student, stages=stages, trained=any(s.kept for s in stages))
