"""Round-level *heuristics* for sequential gradient coding with a delay budget T (no guarantee).

For the constructions of Krishnan, Ebrahimi, Khisti (ICLR 2023) with their guarantees, see
:mod:`verde.coding.sequential_multiplexed` (M-SGC: every (B, W, lambda)-bursty pattern decodes
within T = W-2+B at load ``(lambda+1)(W-1+B) / (n((lambda+1)(W-1)+B))``) and
:mod:`verde.coding.sequential_selective` (SR-SGC, T = B, and the plain code with the same
guarantee). The two classes here are older adaptations kept because
:func:`verde.coding.simulate.compare` reports them; bench/coding_bench.py prints them as
``*-heuristic`` next to M-SGC and SR-SGC. They are modelled round by round on a matrix of
slowdowns (see :mod:`verde.coding.delays`):

* :class:`SelectiveRepetition` — every job is coded with fractional repetition of low
  replication ``r``; each round the master waits for the fastest ``n - s`` workers only. Groups
  of a job with no finished replica are *selectively repeated*: re-attempted in the next round by
  a worker of that group that did finish (or, failing that, by the fastest finisher), adding
  only that partition's load. A job still incomplete at round t+T blocks the master until its
  missing partitions finish (counted in the round time).
* :class:`Multiplexed` — the same, but adaptive: workers that straggled in the previous round
  (bursty stragglers persist) are expected to straggle again, so their groups' tasks are also
  given to a worker that was fast in the previous round up front, so a burst does not leave the
  group unfinished. It does not beat :class:`SelectiveRepetition` in any delay model of the
  bench; M-SGC is the multiplexed scheme that does (on patterns inside its bursty model).

Like the paper, they assume a job's partitions can be re-sent to any worker (the master owns
the data). Without a straggler model they promise nothing about lateness beyond "blocks at T".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SequentialRun:
    """Per-round times, per-round mean worker load, and how late jobs finished."""

    round_times: np.ndarray
    mean_load: float
    max_lateness: int
    blocked_rounds: int


def _check(n: int, replication: int, wait_stragglers: int, delay: int) -> None:
    if replication < 1 or n % replication:
        raise ValueError(f"replication must divide n: r={replication}, n={n}")
    if not 0 <= wait_stragglers < n:
        raise ValueError(f"stragglers to skip must be in [0, n), got {wait_stragglers}")
    if delay < 0:
        raise ValueError(f"delay budget T must be >= 0, got {delay}")


@dataclass(frozen=True)
class SelectiveRepetition:
    """Light FR code (``replication`` r) + repetition of unfinished groups within ``delay`` T."""

    n_workers: int
    replication: int
    stragglers: int
    delay: int
    name: str = "sequential-selective-repetition"

    def __post_init__(self) -> None:
        _check(self.n_workers, self.replication, self.stragglers, self.delay)

    def run(self, slowdowns: np.ndarray) -> SequentialRun:
        return _simulate(self, slowdowns, adaptive=False)


@dataclass(frozen=True)
class Multiplexed:
    """Adaptive variant: pre-assigns backups for groups of recent stragglers."""

    n_workers: int
    replication: int
    stragglers: int
    delay: int
    name: str = "sequential-multiplexed"

    def __post_init__(self) -> None:
        _check(self.n_workers, self.replication, self.stragglers, self.delay)

    def run(self, slowdowns: np.ndarray) -> SequentialRun:
        return _simulate(self, slowdowns, adaptive=True)


def _simulate(
    scheme: SelectiveRepetition | Multiplexed, slowdowns: np.ndarray, *, adaptive: bool
) -> SequentialRun:
    rounds, n = slowdowns.shape
    if n != scheme.n_workers:
        raise ValueError(f"slowdowns have {n} workers, scheme has {scheme.n_workers}")
    r = scheme.replication
    groups = n // r
    unit = 1.0 / groups  # one group's partition is 1/groups of the data
    pending: dict[int, set[int]] = {}  # job -> groups not finished yet
    times = np.zeros(rounds)
    loads = np.zeros(rounds)
    prev_slow: set[int] = set()
    max_late = 0
    blocked = 0
    for t in range(rounds):
        load = np.full(n, unit)  # every worker computes its own group's partition of job t
        extra: list[tuple[int, int, int]] = []  # (job, group, worker) repeat tasks this round
        for job in sorted(pending):
            for g in sorted(pending[job]):
                w = _repeat_worker(g, r, slowdowns, t, prev_slow)
                load[w] += unit
                extra.append((job, g, w))
        backups: list[tuple[int, int]] = []
        if adaptive and prev_slow:
            for g in sorted({w // r for w in prev_slow}):
                members = range(g * r, (g + 1) * r)
                if all(m in prev_slow for m in members):
                    w = _fastest_trusted(prev_slow, load, n)
                    load[w] += unit
                    backups.append((g, w))
        finish = load * slowdowns[t]
        skip = scheme.stragglers
        order = np.argsort(finish, kind="stable")
        cutoff = finish[order[n - skip - 1]]
        done = {int(w) for w in np.flatnonzero(finish <= cutoff)}
        pending[t] = {g for g in range(groups)
                      if not any(m in done for m in range(g * r, (g + 1) * r))}
        for g, w in backups:
            if w in done:
                pending[t].discard(g)
        for job, g, w in extra:
            if w in done:
                pending[job].discard(g)
        round_time = cutoff
        for job in list(pending):
            if not pending[job]:
                max_late = max(max_late, t - job)
                del pending[job]
            elif t - job >= scheme.delay:
                # Deadline: wait for the fastest member of every missing group.
                wait_for = max(min(finish[m] for m in range(g * r, (g + 1) * r))
                               for g in pending[job])
                round_time = max(round_time, wait_for)
                blocked += 1
                max_late = max(max_late, t - job)
                del pending[job]
        times[t] = round_time
        loads[t] = float(load.mean())
        prev_slow = set(range(n)) - done
    return SequentialRun(times, float(loads.mean()), max_late, blocked)


def _repeat_worker(group: int, r: int, slowdowns: np.ndarray, t: int, slow: set[int]) -> int:
    members = [m for m in range(group * r, (group + 1) * r) if m not in slow]
    if members:
        return members[0]
    fast = [w for w in range(slowdowns.shape[1]) if w not in slow]
    return fast[0] if fast else group * r


def _fastest_trusted(slow: set[int], load: np.ndarray, n: int) -> int:
    candidates = [w for w in range(n) if w not in slow]
    if not candidates:
        return 0
    return min(candidates, key=lambda w: (load[w], w))
