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
* :class:`ConformingBursty` — bursts of 1..B rounds whose pattern always conforms to the
  paper's model as :class:`~verde.coding.sequential_model.BurstyStragglerModel` checks it
  (including its temporal condition, which :class:`Bursty` may break).

This module is the one home of the bursty samplers; the checker of the (B, W, lambda) model
lives in :mod:`verde.coding.sequential_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from verde.coding.sequential_model import BurstyStragglerModel


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
class _BurstyParameters:
    """What both bursty samplers are parameterised by: the model (B, W, lambda), how much slower
    a straggler is, how often a burst starts, and everyone's jitter."""

    burst: int = 2
    window: int = 4
    lam: int = 2
    slowdown: float = 8.0
    start_prob: float = 0.3
    jitter: float = 0.05


@dataclass(frozen=True)
class Bursty(_BurstyParameters):
    """(B, W, lambda)-bursty stragglers: bursts of <= B rounds, <= lam workers per W-window.

    A worker starts at most one burst in any window of W rounds (Krishnan, Ebrahimi, Khisti,
    ICLR 2023), so every sampled pattern lies inside the model the sequential schemes assume.
    """

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
        return _slow_down(slow, self.slowdown, self.jitter, rng)


@dataclass(frozen=True)
class ConformingBursty(_BurstyParameters):
    """A delay model whose straggler pattern always conforms to the paper's (B, W, lambda) model.

    Each round a worker not straggling starts a burst with probability ``start_prob`` if that
    keeps the pattern in the model (it has not straggled in the last W-1 rounds, and the window
    keeps at most lambda distinct stragglers); a burst lasts a uniform 1..B rounds. Stragglers
    are ``slowdown`` times slower; everyone jitters by ``1 + Exp(jitter)``. Unlike
    :class:`Bursty` (whose bursts always last B rounds), bursts here last 1..B rounds and every
    round is checked against :class:`~verde.coding.sequential_model.BurstyStragglerModel`.
    """

    start_prob: float = 0.05
    name: str = "bursty-conforming"

    def sample(self, rounds: int, workers: int, rng: np.random.Generator) -> np.ndarray:
        _check(rounds, workers)
        model = BurstyStragglerModel(self.burst, self.window, self.lam)
        if not 0 <= self.start_prob <= 1 or not self.slowdown >= 1:
            raise ValueError("need 0 <= start_prob <= 1 and slowdown >= 1")
        slow = np.zeros((rounds, workers), dtype=bool)
        left = np.zeros(workers, dtype=np.int64)  # rounds left in the current burst
        last = np.full(workers, -model.window)  # last round each worker straggled
        for t in range(rounds):
            lo = max(0, t - model.history_rounds)
            in_window = set(np.flatnonzero(slow[lo:t].any(axis=0)).tolist())
            for w in rng.permutation(workers).tolist():
                if left[w] > 0:
                    left[w] -= 1
                elif (t - last[w] >= model.window and rng.random() < self.start_prob
                      and len(in_window | {w}) <= model.lam):
                    left[w] = int(rng.integers(1, model.burst + 1)) - 1
                else:
                    continue
                slow[t, w] = True
                last[w] = t
                in_window.add(w)
        return _slow_down(slow, self.slowdown, self.jitter, rng)


def _slow_down(slow: np.ndarray, slowdown: float, jitter: float, rng: np.random.Generator
               ) -> np.ndarray:
    """Slowdowns from a straggler pattern: everyone ``1 + Exp(jitter)``, stragglers times
    ``slowdown`` (the jitter is drawn after the pattern, for every cell)."""
    base = 1.0 + rng.exponential(jitter, size=slow.shape)
    return np.where(slow, base * slowdown, base)
