"""Straggler delay models: how long each worker takes in each round.

A model returns, for ``rounds x workers``, a *slowdown factor* >= 1 that multiplies a worker's
nominal compute time (its load times the time one worker needs for the whole data set). They
follow the models used in the gradient-coding literature:

* :class:`ShiftedExponential` — ``1 + Exp(mean)``, the classic model of Lee et al. (2018) and
  Tandon et al. (2017): every worker jitters a little.
* :class:`HeavyTailed` — a fraction of workers each round is hit by a Pareto-distributed
  slowdown (straggling VMs, preemption): rare, but very slow.
* :class:`Bursty` — the (B, W, lambda) model of Krishnan, Ebrahimi, Khisti (ICLR 2023): in any
  window of W consecutive rounds at most lambda distinct workers straggle, each in bursts of
  at most B consecutive rounds. Straggling persists, which adaptive schemes can exploit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class DelayModel(Protocol):
    name: str

    def sample(self, rounds: int, workers: int, rng: np.random.Generator) -> np.ndarray: ...


def _check(rounds: int, workers: int) -> None:
    if rounds < 1 or workers < 1:
        raise ValueError(f"rounds and workers must be >= 1, got {rounds}, {workers}")


@dataclass(frozen=True)
class ShiftedExponential:
    mean_extra: float = 0.2
    name: str = "shifted-exponential"

    def sample(self, rounds: int, workers: int, rng: np.random.Generator) -> np.ndarray:
        _check(rounds, workers)
        if not self.mean_extra > 0:
            raise ValueError(f"mean_extra must be positive, got {self.mean_extra}")
        return 1.0 + rng.exponential(self.mean_extra, size=(rounds, workers))


@dataclass(frozen=True)
class HeavyTailed:
    """``fraction`` of workers per round straggle with slowdown ``1 + scale * Pareto(alpha)``."""

    fraction: float = 0.2
    alpha: float = 1.5
    scale: float = 4.0
    jitter: float = 0.05
    name: str = "heavy-tailed"

    def sample(self, rounds: int, workers: int, rng: np.random.Generator) -> np.ndarray:
        _check(rounds, workers)
        if not 0 <= self.fraction < 1:
            raise ValueError(f"fraction must be in [0, 1), got {self.fraction}")
        base = 1.0 + rng.exponential(self.jitter, size=(rounds, workers))
        hit = rng.random((rounds, workers)) < self.fraction
        slow = 1.0 + self.scale * (1.0 + rng.pareto(self.alpha, size=(rounds, workers)))
        return np.where(hit, base * slow, base)


@dataclass(frozen=True)
class Bursty:
    """(B, W, lambda)-bursty stragglers: bursts of <= B rounds, <= lam workers per W-window.

    A worker starts at most one burst in any window of W rounds (Krishnan, Ebrahimi, Khisti,
    ICLR 2023), so every sampled pattern lies inside the model the sequential schemes assume.
    """

    burst: int = 2
    window: int = 4
    lam: int = 2
    slowdown: float = 8.0
    start_prob: float = 0.3
    jitter: float = 0.05
    name: str = "bursty"

    def sample(self, rounds: int, workers: int, rng: np.random.Generator) -> np.ndarray:
        _check(rounds, workers)
        if not (1 <= self.burst <= self.window and 0 <= self.lam <= workers):
            raise ValueError("need 1 <= burst <= window and 0 <= lam <= workers")
        slow = np.zeros((rounds, workers), dtype=bool)
        for t in range(rounds):
            lo = max(0, t - self.window + 1)
            window_stragglers = set(np.flatnonzero(slow[lo:t].any(axis=0)))
            for w in range(workers):
                run = 0
                while run < t and slow[t - 1 - run, w]:
                    run += 1
                if 0 < run < self.burst:
                    slow[t, w] = True  # bursts continue up to B rounds
                elif (run == 0 and not slow[lo:t, w].any() and rng.random() < self.start_prob
                      and (w in window_stragglers or len(window_stragglers) < self.lam)):
                    slow[t, w] = True
                    window_stragglers.add(w)
        base = 1.0 + rng.exponential(self.jitter, size=(rounds, workers))
        return np.where(slow, base * self.slowdown, base)
