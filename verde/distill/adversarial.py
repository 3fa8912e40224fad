"""A learned detector trained against simulated and generated attacks (Fides' GAN set-up).

Fides (Kumar et al., ASIA CCS 2024) trains its detector adversarially: a generator perturbs
honest service outputs so that the prediction flips while the detector is fooled, and the
detector learns to separate clean (service, verifier) output pairs from both the generator's
outputs and a library of hand-written tampers (top-2 swap, averaging, random switch...). The
generator sees only the service's output (the provider cannot see the client's verifier); the
detector sees both. The detector's logit is a score like any divergence statistic, so it is
calibrated to a false-positive rate by :class:`verde.distill.detector.DivergenceDetector` on
clean data exactly as the closed-form statistics are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from verde.distill._checks import (
    check_positive_int,
    check_probabilities,
    check_same_requests,
)
from verde.distill.attacks import OutputTamper
from verde.distill.divergence import cross_entropy, kl_divergence
from verde.distill.errors import DistillArgumentError

_LOG_FLOOR = 1e-6
_NOISE_DIM = 8


def _features(service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
    """log p_s, log p_v, the sorted service probabilities, cross-entropy and KL."""
    ps, pv = service_probs.float(), verifier_probs.float()
    return torch.cat(
        [
            ps.clamp_min(_LOG_FLOOR).log(),
            pv.clamp_min(_LOG_FLOOR).log(),
            ps.sort(dim=1, descending=True).values,
            cross_entropy(ps, pv)[:, None],
            kl_divergence(ps, pv)[:, None],
        ],
        dim=1,
    )


@dataclass
class LearnedDivergence:
    """A trained detector network, usable as a statistic: ``(p_s, p_v) -> scores``."""

    model: nn.Module

    @torch.no_grad()
    def __call__(self, service_probs: torch.Tensor, verifier_probs: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(_features(service_probs, verifier_probs)).squeeze(1).double()


def _generator(classes: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(classes + _NOISE_DIM, hidden), nn.ReLU(), nn.Linear(hidden, classes)
    )


def train_learned_detector(
    service_probs: torch.Tensor,
    verifier_probs: torch.Tensor,
    *,
    tampers: Sequence[OutputTamper],
    steps: int = 600,
    gan: bool = True,
    hidden: int = 64,
    batch_size: int = 128,
    seed: int = 0,
) -> LearnedDivergence:
    """Train the detector on clean pairs vs tampered and (if ``gan``) generated outputs.

    ``service_probs`` and ``verifier_probs`` are clean outputs on client data that is *not* the
    calibration set. The generator's loss is the honest label's log-probability (to flip it)
    plus the detector's suspicion of its output (to evade); the detector's is binary
    cross-entropy, clean = 0, tampered or generated = 1.
    """
    check_probabilities("service_probs", service_probs)
    check_probabilities("verifier_probs", verifier_probs)
    check_same_requests("service_probs", service_probs, "verifier_probs", verifier_probs)
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    if not tampers and not gan:
        raise DistillArgumentError("need at least one tamper or gan=True to have attacks")
    n, classes = service_probs.shape
    ps, pv = service_probs.float(), verifier_probs.float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        detector = nn.Sequential(
            nn.Linear(3 * classes + 2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )
        generator_net = _generator(classes, hidden)
    generator = torch.Generator().manual_seed(seed)
    d_opt = torch.optim.Adam(detector.parameters(), lr=1e-3)
    g_opt = torch.optim.Adam(generator_net.parameters(), lr=1e-3)
    bce = nn.functional.binary_cross_entropy_with_logits
    for _ in range(steps):
        ids = torch.randint(0, n, (batch_size,), generator=generator)
        clean_s, clean_v = ps[ids], pv[ids]
        fakes_s = [t(clean_s, generator) for t in tampers]
        if gan:
            noise = torch.randn(batch_size, _NOISE_DIM, generator=generator)
            log_s = clean_s.clamp_min(_LOG_FLOOR).log()
            delta = generator_net(torch.cat([log_s, noise], dim=1))
            generated = torch.softmax(log_s + delta, dim=1)
            fakes_s.append(generated.detach())
        fake_s = torch.cat(fakes_s)
        fake_v = clean_v.repeat(len(fakes_s), 1)
        logits_clean = detector(_features(clean_s, clean_v))
        logits_fake = detector(_features(fake_s, fake_v))
        d_loss = bce(logits_clean, torch.zeros_like(logits_clean)) + bce(
            logits_fake, torch.ones_like(logits_fake)
        )
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        if gan:
            honest = clean_s.argmax(1, keepdim=True)
            flip = generated.gather(1, honest).clamp_min(_LOG_FLOOR).log().mean()
            evade = detector(_features(generated, clean_v))
            g_loss = flip + bce(evade, torch.zeros_like(evade))
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
    detector.eval()
    return LearnedDivergence(detector)
