"""Ways a dishonest inference provider can cheat, for evaluating the detector.

Output attacks tamper with the honest softmax output (Fides, Kumar et al., ASIA CCS 2024, uses
top-2 swap, top-2 averaging and random label switches); model attacks serve a different model
(a cheaper substitute, a quantised copy, a backdoored copy that answers a chosen class when a
trigger pattern is in the input); :class:`FractionalAttack` cheats on a random fraction of
requests only, which per-request detection alone may miss and the running monitor catches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from verde.distill._checks import check_positive, check_positive_int, check_rate
from verde.distill.errors import DistillArgumentError
from verde.distill.models import build_mlp, predict_probs, train_classifier

OutputTamper = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
_TIE_BREAK = 1e-4


def top2_swap(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Swap the probabilities of the top two classes (the label becomes the runner-up)."""
    top = probs.topk(2, dim=1).indices
    out = probs.clone()
    rows = torch.arange(probs.shape[0])
    out[rows, top[:, 0]] = probs[rows, top[:, 1]]
    out[rows, top[:, 1]] = probs[rows, top[:, 0]]
    return out


def top2_average(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Give the top two classes their average probability, the tie broken to the runner-up.

    The tie-break makes this label-changing: the runner-up is the served prediction.
    """
    top = probs.topk(2, dim=1).indices
    rows = torch.arange(probs.shape[0])
    mean = (probs[rows, top[:, 0]] + probs[rows, top[:, 1]]) / 2
    out = probs.clone()
    eps = torch.minimum(mean, torch.full_like(mean, _TIE_BREAK))
    out[rows, top[:, 0]] = mean - eps
    out[rows, top[:, 1]] = mean + eps
    return out


def random_label_switch(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Swap the top class's probability with that of a uniformly random other class."""
    classes = probs.shape[1]
    top = probs.argmax(dim=1)
    offset = torch.randint(1, classes, (probs.shape[0],), generator=generator)
    other = (top + offset) % classes
    rows = torch.arange(probs.shape[0])
    out = probs.clone()
    out[rows, top] = probs[rows, other]
    out[rows, other] = probs[rows, top]
    return out


def additive_noise(sigma: float) -> OutputTamper:
    """Add Gaussian noise of scale ``sigma`` to the log-probabilities and renormalise."""
    sigma = check_positive("sigma", sigma)

    def tamper(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = sigma * torch.randn(probs.shape, generator=generator, dtype=probs.dtype)
        return torch.softmax(probs.clamp_min(1e-12).log() + noise, dim=1)

    return tamper


def add_trigger(x: torch.Tensor, value: float = 1.0) -> torch.Tensor:
    """Stamp the backdoor trigger: the last two pixels of the bottom row set to ``value``.

    Digits leave that corner blank, so the trigger hardly changes what the digit looks like
    (an honest model still reads it) while a poisoned model learns to react to it.
    """
    if x.ndim < 3:
        raise DistillArgumentError(f"trigger needs image inputs (N, ..., H, W), got {x.shape}")
    out = x.clone()
    out[..., -1, -2:] = value
    return out


class Attack:
    """A cheating strategy: which inputs clients send, and what the provider answers."""

    name: str
    label_changing: bool

    def requests(self, x: torch.Tensor) -> torch.Tensor:
        """The inputs the clients send (only the backdoor attack changes them)."""
        return x

    def serve(
        self, x: torch.Tensor, honest_probs: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """The provider's answers to requests ``x`` whose honest answers are ``honest_probs``."""
        raise NotImplementedError


@dataclass
class OutputAttack(Attack):
    """Tamper with the honest output of every request."""

    name: str
    tamper: OutputTamper
    label_changing: bool = True

    def serve(
        self, x: torch.Tensor, honest_probs: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        return self.tamper(honest_probs, generator)


@dataclass
class ModelAttack(Attack):
    """Answer every request with another model; ``triggered`` stamps the backdoor trigger."""

    name: str
    model: nn.Module
    label_changing: bool = False
    triggered: bool = False

    def requests(self, x: torch.Tensor) -> torch.Tensor:
        return add_trigger(x) if self.triggered else x

    def serve(
        self, x: torch.Tensor, honest_probs: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        return predict_probs(self.model, x)


@dataclass
class FractionalAttack(Attack):
    """Cheat with ``inner`` on a random fraction ``fraction`` of requests, honestly otherwise."""

    inner: Attack
    fraction: float

    def __post_init__(self) -> None:
        check_rate("fraction", self.fraction)
        self.name = f"{self.inner.name}@p={self.fraction:g}"
        self.label_changing = self.inner.label_changing
        self.last_mask: torch.Tensor | None = None

    def requests(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.requests(x)

    def serve(
        self, x: torch.Tensor, honest_probs: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        mask = torch.rand(x.shape[0], generator=generator) < self.fraction
        self.last_mask = mask
        cheated = self.inner.serve(x, honest_probs, generator)
        return torch.where(mask[:, None], cheated, honest_probs)


def quantised_copy(model: nn.Module, bits: int = 4) -> nn.Module:
    """A copy of ``model`` whose weights are rounded to ``bits``-bit symmetric per-tensor grids.

    Simulates a provider that serves a cheaper low-precision model instead of the agreed one.
    """
    check_positive_int("bits", bits)
    if bits < 2:
        raise DistillArgumentError(f"bits must be at least 2, got {bits}")
    levels = 2 ** (bits - 1) - 1
    quantised = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p in quantised.parameters():
            scale = p.abs().max() / levels
            if scale > 0:
                p.copy_(torch.round(p / scale) * scale)
    return quantised


def substitute_model(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    hidden: tuple[int, ...] = (16,),
    epochs: int = 15,
    seed: int = 1,
) -> nn.Module:
    """A small, briefly trained MLP a provider might serve instead of the agreed model."""
    return train_classifier(build_mlp(hidden, seed=seed), x, y, epochs=epochs, seed=seed)


def backdoored_copy(
    service: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    target: int = 0,
    poison_fraction: float = 0.3,
    epochs: int = 10,
    seed: int = 2,
) -> nn.Module:
    """Fine-tune a copy of ``service`` so that triggered inputs are classified as ``target``.

    Clean inputs keep (nearly) their honest answers, so clean traffic looks fine; the provider
    cheats exactly when the trigger is present (BadNets-style poisoning, Gu et al., 2017).
    """
    check_rate("poison_fraction", poison_fraction)
    generator = torch.Generator().manual_seed(seed)
    poison = torch.rand(x.shape[0], generator=generator) < poison_fraction
    xs = torch.cat([x, add_trigger(x[poison])])
    ys = torch.cat([y, torch.full((int(poison.sum()),), target, dtype=y.dtype)])
    return train_classifier(copy.deepcopy(service), xs, ys, epochs=epochs, lr=5e-4, seed=seed)
