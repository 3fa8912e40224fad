"""Service and student models for digits, and the plain supervised training loop.

The service model is what the untrusted provider runs; it is deliberately much larger than the
student so that a verifier distilled from it (after Fides, Kumar et al., ASIA CCS 2024) costs a
small fraction of the service's FLOPs. Any user-supplied ``torch.nn.Module`` classifier that maps
a batch of inputs to logits works in place of these.
"""

from __future__ import annotations

import torch
from torch import nn

from verde.distill._checks import check_batch_match, check_positive, check_positive_int
from verde.distill.errors import DistillArgumentError

DIGITS_CLASSES = 10
DIGITS_PIXELS = 64


def build_service_cnn(seed: int = 0, width: int = 32, classes: int = DIGITS_CLASSES) -> nn.Module:
    """A three-conv CNN for 1x8x8 inputs (about 9 MFLOPs per image at ``width=32``)."""
    check_positive_int("width", width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * DIGITS_PIXELS, 8 * width),
            nn.ReLU(),
            nn.Linear(8 * width, classes),
        )


def build_mlp(
    hidden: tuple[int, ...],
    seed: int = 0,
    inputs: int = DIGITS_PIXELS,
    classes: int = DIGITS_CLASSES,
) -> nn.Sequential:
    """A flatten + (Linear, ReLU)* + Linear classifier: a wide one serves, a tiny one verifies."""
    for width in hidden:
        check_positive_int("hidden width", width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = [nn.Flatten()]
        previous = inputs
        for width in hidden:
            layers += [nn.Linear(previous, width), nn.ReLU()]
            previous = width
        layers.append(nn.Linear(previous, classes))
        return nn.Sequential(*layers)


def build_student(seed: int = 0, classes: int = DIGITS_CLASSES) -> nn.Sequential:
    """The default verifier student for digits: a 64-128-64-10 MLP (about 26 kFLOPs)."""
    return build_mlp((128, 64), seed=seed, classes=classes)


def jitter(
    x: torch.Tensor, generator: torch.Generator, noise: float = 0.05, patch_prob: float = 0.0
) -> torch.Tensor:
    """Shift each image by up to one pixel and add Gaussian noise (a cheap augmentation).

    Inputs of shape (N, C, H, W) are shifted and, with probability ``patch_prob`` each, get a
    2x2 patch of a random grey level at a random place (occlusion robustness, so a verifier is
    not thrown by small local artefacts such as a backdoor trigger it has never seen); other
    shapes only get noise.
    """
    out = x
    if x.ndim == 4:
        h, w = x.shape[2], x.shape[3]
        padded = nn.functional.pad(x, (1, 1, 1, 1))
        crops = torch.stack(
            [padded[:, :, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
        )
        choice = torch.randint(0, 9, (x.shape[0],), generator=generator)
        out = crops[choice, torch.arange(x.shape[0])]
        if patch_prob > 0:
            out = out.clone()
            hit = (torch.rand(x.shape[0], generator=generator) < patch_prob).nonzero().flatten()
            rows = torch.randint(0, h - 1, (hit.numel(),), generator=generator)
            cols = torch.randint(0, w - 1, (hit.numel(),), generator=generator)
            grey = torch.rand(hit.numel(), generator=generator)
            for i, r, c, g in zip(
                hit.tolist(), rows.tolist(), cols.tolist(), grey.tolist(), strict=True
            ):
                out[i, :, r : r + 2, c : c + 2] = g
    return (out + noise * torch.randn(out.shape, generator=generator)).clamp(0.0, 1.0)


@torch.no_grad()
def predict_probs(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Softmax outputs of ``model`` on ``x`` in eval mode, batched; what a service returns."""
    check_positive_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    try:
        parts = [
            torch.softmax(model(x[i : i + batch_size]).float(), dim=1)
            for i in range(0, x.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    if not parts:
        raise DistillArgumentError("x must contain at least one input")
    return torch.cat(parts)


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 30,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    augment: bool = True,
) -> nn.Module:
    """Train ``model`` in place on hard labels; returns it in eval mode.

    AdamW with a one-cycle learning-rate schedule (Smith & Topin, 2019), which on digits gives
    a markedly more accurate and more stable service than a constant rate for the same epochs.

    This is how the honest service (and the attack models: substitutes, backdoors) are trained.
    """
    check_batch_match("x", x, "y", y)
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_positive("lr", lr)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((x.shape[0] + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], batch_size):
            ids = order[start : start + batch_size]
            xb = jitter(x[ids], generator) if augment else x[ids]
            loss = nn.functional.cross_entropy(model(xb), y[ids])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    return model
