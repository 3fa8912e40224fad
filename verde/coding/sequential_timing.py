"""Round-level timing of the sequential schemes on a matrix of slowdowns.

Time model (as in :mod:`verde.coding.simulate`): one worker needs time 1 for a whole job's
data; in round r a worker with load L (the sum of its tasks' shares) and slowdown x finishes at
``L * x``. The master of a scheme with a guarantee waits, each round, for the fewest workers it
may: it gives up on the slowest workers as long as the scheme still *admits* them as stragglers
(for M-SGC and SR-SGC: the pattern so far stays in the (B, W, lambda) model; for a per-round
code: this round's job still decodes) — :func:`verde.coding.sequential_model.slowest_admissible`.
The round lasts until the last worker waited for finishes. Because every admitted pattern is
guaranteed to decode by its deadline, a missed deadline here is a bug and raises
:class:`~verde.coding.sequential_base.DeadlineMissed`.

This is the policy of the paper's experiments made exact: they declare stragglers with a fixed
threshold and wait for everyone when the declared pattern leaves the model; here the master
waits for exactly as many slow workers as the model requires.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from verde.coding.sequential_base import SequentialRun
from verde.coding.sequential_model import slowest_admissible


class _Scheme(Protocol):
    name: str
    n_workers: int

    @property
    def task_load(self) -> float: ...

    def start(self) -> SequentialRun: ...

    def admits(self, history: Sequence[Collection[int]], stragglers: Collection[int]) -> bool: ...


@dataclass(frozen=True)
class ScheduleTiming:
    """Per-round times, mean worker load, how late jobs decoded, stragglers skipped per round."""

    name: str
    round_times: np.ndarray
    mean_load: float
    max_lateness: int
    mean_lateness: float
    mean_skipped: float

    @property
    def mean_step_time(self) -> float:
        return float(self.round_times.mean())


def time_schedule(scheme: _Scheme, slowdowns: np.ndarray, *, patience: float | None = 0.5
                  ) -> ScheduleTiming:
    """Play ``scheme`` over ``rounds x workers`` slowdowns; jobs 0..rounds-1 start in turn.

    ``patience`` (the paper's mu): only workers finishing after ``(1 + patience)`` times the
    fastest worker are *candidates* to be given up on. A scheme with memory (M-SGC, SR-SGC)
    needs it: giving up on a merely jittery worker spends the model's budget (lambda distinct
    workers per window, one burst per worker) that a real straggler may need a round later.
    ``None`` considers every worker (right for a per-round code, which has no memory).
    """
    if patience is not None and not patience >= 0:
        raise ValueError(f"patience must be >= 0 or None, got {patience!r}")
    sd = np.asarray(slowdowns, dtype=np.float64)
    if sd.ndim != 2 or sd.shape[1] != scheme.n_workers:
        raise ValueError(f"slowdowns must be rounds x {scheme.n_workers}, got {sd.shape}")
    if not (sd > 0).all():
        raise ValueError("slowdowns must be positive")
    rounds, n = sd.shape
    run = scheme.start()
    times = np.zeros(rounds)
    loads = np.zeros(rounds)
    skipped = np.zeros(rounds)
    lateness: list[int] = []
    for r in range(rounds):
        plan = run.assignments()
        load = np.array([len(tasks) for tasks in plan], dtype=np.float64) * scheme.task_load
        finish = load * sd[r]
        history = run.history
        candidates = finish
        if patience is not None:
            fastest = finish[finish > 0].min(initial=np.inf)
            candidates = np.where(finish > (1 + patience) * fastest, finish, 0.0)
        slow = slowest_admissible(candidates, lambda s, h=history: scheme.admits(h, s))
        waited = [finish[w] for w in range(n) if w not in slow]
        times[r] = max(waited, default=0.0)
        loads[r] = float(load.mean())
        skipped[r] = len(slow)
        lateness.extend(r - job for job in run.finish_round(slow))
    late = np.array(lateness if lateness else [0])
    return ScheduleTiming(scheme.name, times, float(loads.mean()), int(late.max()),
                          float(late.mean()), float(skipped.mean()))
