"""The (B, W, lambda)-bursty straggler model of sequential gradient coding, as a checker.

Krishnan, Ebrahimi, Khisti, "Sequential gradient coding for straggler mitigation" (ICLR 2023)
state their guarantees for straggler *patterns* (a boolean ``rounds x workers`` matrix, True =
the worker's results of that round never arrive). A pattern conforms to the (B, W, lambda)
model when, in every window of W consecutive rounds,

1. at most ``lambda`` distinct workers straggle (spatial condition), and
2. the straggling rounds of each worker lie within B consecutive rounds (temporal condition):
   equivalently, a worker that straggles in round r does not straggle in rounds r-W+1 .. r-B.

Rounds before 0 count as straggler-free. Both conditions only get easier when stragglers are
removed, so conformance is closed under subsets; :func:`slowest_admissible` relies on that.

Why a checker and not a sampler: schemes guarantee decoding only inside the model, so the master
must know, round by round, whether it may still give up on a slow worker (see
:mod:`verde.coding.sequential_timing`). Note that :class:`verde.coding.delays.Bursty` bounds
burst length and distinct stragglers per window but can restart a burst right after the previous
one ended, which this (the paper's) temporal condition forbids; such rounds are handled by
waiting, never by a wrong decode. :class:`verde.coding.delays.ConformingBursty` samples patterns
that always conform.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BurstyStragglerModel:
    """(B, W, lambda): bursts of at most ``burst`` rounds, at most ``lam`` workers per window."""

    burst: int
    window: int
    lam: int

    def __post_init__(self) -> None:
        for name in ("burst", "window", "lam"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"{name} must be an int, got {getattr(self, name)!r}")
        if not 1 <= self.burst < self.window:
            raise ValueError(
                f"need 1 <= B < W (with B = W a worker may straggle forever), "
                f"got B={self.burst}, W={self.window}"
            )
        if self.lam < 0:
            raise ValueError(f"lambda must be >= 0, got {self.lam}")

    @property
    def history_rounds(self) -> int:
        """How many past rounds decide whether the next round's stragglers are admissible."""
        return self.window - 1

    def admits(self, history: Sequence[Collection[int]], stragglers: Collection[int]) -> bool:
        """Whether ``stragglers`` in the next round keep the pattern inside the model.

        ``history`` lists the straggler sets of the previous rounds (oldest first); only the last
        W-1 matter. The history itself is assumed to conform.
        """
        k = self.history_rounds
        recent = [set(h) for h in history[max(0, len(history) - k):]]
        new = set(stragglers)
        distinct = new.union(*recent)
        if len(distinct) > self.lam:
            return False
        # A straggler now must not have straggled B..W-1 rounds ago.
        too_old = recent[: max(0, len(recent) - self.burst + 1)]
        return not any(new & set(past) for past in too_old)

    def first_violation(self, pattern: np.ndarray) -> str | None:
        """Where a boolean ``rounds x workers`` pattern leaves the model, or None if it conforms."""
        rows = [{int(w) for w in np.flatnonzero(row)} for row in _as_pattern(pattern)]
        return self.first_violation_in(rows)

    def first_violation_in(self, history: Sequence[Collection[int]]) -> str | None:
        """Like :meth:`first_violation`, for a list of per-round straggler sets."""
        seen: list[set[int]] = []
        for r, slow in enumerate(history):
            now = set(slow)
            if not self.admits(seen, now):
                return f"round {r}: {self._why(seen, now)}"
            seen.append(now)
        return None

    def deadline_note(self, history: Sequence[Collection[int]]) -> str:
        """For a missed deadline: where the pattern left the model (or that it never did)."""
        where = self.first_violation_in(history)
        desc = f"({self.burst}, {self.window}, {self.lam}) bursty model"
        if where is None:
            return f"the straggler pattern stayed inside the {desc}, so this is a bug"
        return f"the straggler pattern left the {desc} at {where}"

    def conforms(self, pattern: np.ndarray) -> bool:
        return self.first_violation(pattern) is None

    def _why(self, history: list[set[int]], now: set[int]) -> str:
        recent = history[-self.history_rounds:]
        distinct = set().union(*recent, now)
        if len(distinct) > self.lam:
            return (f"{len(distinct)} distinct stragglers {sorted(distinct)} within W={self.window}"
                    f" rounds, lambda={self.lam}")
        too_old = recent[: max(0, len(recent) - self.burst + 1)]
        again = sorted(now & set().union(*too_old))
        return (f"workers {again} straggle again B={self.burst} to W-1={self.window - 1} rounds "
                "after an earlier straggle (burst longer than B within a window)")


def slowest_admissible(finish: np.ndarray, admissible: Callable[[set[int]], bool]) -> set[int]:
    """The largest set of slowest workers the master may give up on.

    Tries the slowest worker, then the two slowest, ... and stops at the first set that is not
    admissible. Because admissibility is closed under subsets, this is the straggler set that
    minimises the round time ``max(finish of the workers waited for)``. Ties in finish time are
    broken by worker index (higher index counted slower), so the result is deterministic.
    """
    order = sorted(range(len(finish)), key=lambda w: (float(finish[w]), w), reverse=True)
    chosen: set[int] = set()
    for w in order:
        if finish[w] <= 0:
            break  # idle workers are never waited for anyway
        if not admissible(chosen | {w}):
            break
        chosen.add(w)
    return chosen


def _as_pattern(pattern: np.ndarray) -> np.ndarray:
    arr = np.asarray(pattern)
    if arr.ndim != 2 or arr.dtype != bool:
        raise ValueError(f"a straggler pattern is a 2-d bool array, got {arr.dtype} {arr.shape}")
    return arr
