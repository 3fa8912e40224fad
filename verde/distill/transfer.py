"""The transfer set: extra inputs, generated in code, that the service labels for distillation.

Distillation needs only the service's outputs, not ground truth, so the client can label as many
inputs as it can generate (Bucilua, Caruana & Niculescu-Mizil, "Model Compression", KDD 2006,
label synthetic data with the teacher for exactly this reason). What limits detection is where
the verifier and the service disagree on clean inputs, and that happens near the service's
decision boundaries, where the client's few real digits are sparse. Three generators cover that
region:

- ``jitter``: the client's images shifted by up to a pixel, with noise and, half the time, a
  small occluding patch (:func:`verde.distill.models.jitter`); they keep the client's labels;
- ``mixup_near``: an image blended with up to 50% of another one (mixup, Zhang et al., ICLR
  2018), so the service's answer sits between two classes;
- ``boundary_runner_up`` and ``boundary_random``: a few signed-gradient steps that shrink the
  service's log-probability margin of its top class over its runner-up (or over a random other
  class), which walks inputs towards the service's decision boundary, as Jacobian-based dataset
  augmentation does for model extraction (Papernot et al., "Practical Black-Box Attacks against
  Machine Learning", ASIA CCS 2017). The client owns the service model here, so it takes the
  gradients directly.

Every generated input except ``jitter`` is hard-labelled by the service's own prediction, since
its content no longer matches a client label.
"""

from __future__ import annotations

import torch
from torch import nn

from verde.distill._checks import check_non_negative_int, check_positive_int
from verde.distill.errors import DistillArgumentError
from verde.distill.models import jitter, predict_probs

TRANSFER_KINDS = ("jitter", "mixup_near", "boundary_runner_up", "boundary_random")
MIXUP_MAX_SHARE = 0.5
BOUNDARY_STEPS = 3
BOUNDARY_STEP_MIN = 0.01
BOUNDARY_STEP_SPREAD = 0.04


def check_transfer_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """Return ``kinds`` if it is a non-empty tuple of known generator names, else raise."""
    if not isinstance(kinds, tuple) or not kinds:
        raise DistillArgumentError(
            f"transfer must be a non-empty tuple of generator names, got {kinds!r}"
        )
    unknown = [k for k in kinds if k not in TRANSFER_KINDS]
    if unknown:
        raise DistillArgumentError(
            f"unknown transfer generators {unknown}; choose from {list(TRANSFER_KINDS)}"
        )
    return kinds


def mixup_near(
    x: torch.Tensor, generator: torch.Generator, max_share: float = MIXUP_MAX_SHARE
) -> torch.Tensor:
    """Blend each input with a random other one, the partner weighing at most ``max_share``."""
    if not 0.0 < max_share <= 1.0:
        raise DistillArgumentError(f"max_share must lie in (0, 1], got {max_share}")
    partner = torch.randperm(x.shape[0], generator=generator)
    share = max_share * torch.rand(x.shape[0], generator=generator)
    share = share.view(-1, *([1] * (x.ndim - 1)))
    return (1.0 - share) * x + share * x[partner]


def towards_boundary(
    service: nn.Module,
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    runner_up: bool = True,
    steps: int = BOUNDARY_STEPS,
) -> torch.Tensor:
    """Move inputs towards the service's boundary between its top class and another class.

    Each input gets ``steps`` signed-gradient steps (sizes drawn per input from
    [0.01, 0.05], pixels clipped to [0, 1]) that lower log p(top) - log p(other), where
    ``other`` is the service's runner-up (``runner_up=True``) or a uniformly random other
    class. Only the input gets gradients; the service's parameters are left untouched.
    """
    check_positive_int("steps", steps)
    probs = predict_probs(service, x)
    classes = probs.shape[1]
    if classes < 2:
        raise DistillArgumentError("moving towards a decision boundary needs at least 2 classes")
    top2 = probs.topk(2, dim=1).indices
    top = top2[:, 0]
    if runner_up:
        other = top2[:, 1]
    else:
        other = (top + torch.randint(1, classes, top.shape, generator=generator)) % classes
    size = BOUNDARY_STEP_MIN + BOUNDARY_STEP_SPREAD * torch.rand(x.shape[0], generator=generator)
    size = size.view(-1, *([1] * (x.ndim - 1)))
    rows = torch.arange(x.shape[0])
    was_training = service.training
    service.eval()
    out = x.detach().clone()
    try:
        with torch.enable_grad():
            for _ in range(steps):
                out.requires_grad_(True)
                log_probs = torch.log_softmax(service(out), dim=1)
                margin = (log_probs[rows, top] - log_probs[rows, other]).sum()
                (grad,) = torch.autograd.grad(margin, out)
                out = (out.detach() - size * grad.sign()).clamp(0.0, 1.0)
    finally:
        service.train(was_training)
    return out.detach()


def transfer_inputs(
    kind: str,
    x: torch.Tensor,
    service: nn.Module,
    generator: torch.Generator,
    *,
    patch_prob: float = 0.5,
) -> torch.Tensor:
    """One batch of generated inputs of ``kind`` (see :data:`TRANSFER_KINDS`), one per input."""
    check_transfer_kinds((kind,))
    if kind == "jitter":
        return jitter(x, generator, patch_prob=patch_prob)
    if kind == "mixup_near":
        return jitter(mixup_near(x, generator), generator)
    base = jitter(x, generator, patch_prob=patch_prob)
    return towards_boundary(service, base, generator, runner_up=kind == "boundary_runner_up")


def transfer_copies(
    x: torch.Tensor,
    service: nn.Module,
    kinds: tuple[str, ...],
    copies: int,
    generator: torch.Generator,
    *,
    patch_prob: float = 0.5,
) -> list[tuple[str, torch.Tensor]]:
    """``copies`` generated batches of ``x``, the generators in ``kinds`` taking turns; each
    entry is (kind, inputs)."""
    check_transfer_kinds(kinds)
    check_non_negative_int("copies", copies)
    return [
        (
            kinds[i % len(kinds)],
            transfer_inputs(kinds[i % len(kinds)], x, service, generator, patch_prob=patch_prob),
        )
        for i in range(copies)
    ]
