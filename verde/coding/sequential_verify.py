"""Check a sequential scheme against *every* pattern of its straggler model, of any length.

A scheme's future (plans, decodability) depends only on its run's :meth:`state_key` and on the
last W-1 rounds of stragglers (which decide what the model still admits). So a depth-first search
over straggler sets that memoises ``(state_key, recent stragglers)`` visits every reachable
situation once; when it ends without a :class:`~verde.coding.sequential_base.DeadlineMissed`,
no conforming pattern of any length misses a deadline. This turns the paper's theorems into
something a test can check for small n (the state space grows quickly with n and W).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import combinations
from typing import Protocol

import numpy as np

from verde.coding.base import Vector
from verde.coding.sequential_base import Results, SequentialRun, Task


class _Scheme(Protocol):
    n_workers: int

    def start(self) -> SequentialRun: ...

    def admits(self, history: Sequence[Collection[int]], stragglers: Collection[int]) -> bool: ...


def check_every_admitted_pattern(scheme: _Scheme, memory: int, *, max_states: int = 200_000
                                 ) -> int:
    """Explore every straggler pattern ``scheme.admits``; return the number of states visited.

    ``memory`` is how many past rounds ``admits`` looks at (W-1 for the bursty model, 0 for a
    per-round code). Raises ``DeadlineMissed`` (whose message names the round and the pattern's
    standing in the model) at the first pattern that misses a deadline, and ``ValueError`` when
    the search exceeds ``max_states`` (pick smaller parameters).
    """
    if memory < 0:
        raise ValueError(f"memory must be >= 0, got {memory}")
    n = scheme.n_workers
    subsets = [frozenset(c) for k in range(n + 1) for c in combinations(range(n), k)]
    start = scheme.start()
    seen = {(start.state_key(), ())}
    stack = [start]
    while stack:
        run = stack.pop()
        for slow in subsets:
            if not scheme.admits(run.history, slow):
                continue
            child = run.copy()
            child.finish_round(slow)  # raises DeadlineMissed on a counterexample
            recent = tuple(child.history[len(child.history) - memory:]) if memory else ()
            key = (child.state_key(), recent)
            if key not in seen:
                seen.add(key)
                if len(seen) > max_states:
                    raise ValueError(f"more than {max_states} states; use smaller parameters")
                stack.append(child)
    return len(seen)


class _Codec(_Scheme, Protocol):
    @property
    def delay(self) -> int: ...

    def encode(self, worker: int, task: Task, partition_gradients: Mapping[int, Vector]
               ) -> Vector: ...

    def decode(self, job: int, results: Results) -> Vector: ...


def decode_stream(scheme: _Codec, pattern: np.ndarray,
                  job_gradients: Callable[[int], Mapping[int, Vector]]) -> dict[int, Vector]:
    """Play a straggler ``pattern`` with real vectors; return each job decoded at its deadline.

    Every worker that does not straggle in a round sends ``scheme.encode`` of each of its tasks,
    built from ``job_gradients(job)`` (partition -> gradient); job t is decoded from what arrived
    by the end of round t+T. Jobs whose deadline lies past the pattern are left out. Raises
    ``DeadlineMissed`` like the run does.
    """
    arr = np.asarray(pattern)
    if arr.ndim != 2 or arr.dtype != bool or arr.shape[1] != scheme.n_workers:
        raise ValueError(f"pattern must be a bool rounds x {scheme.n_workers} array, "
                         f"got {arr.dtype} {arr.shape}")
    run = scheme.start()
    results: dict[tuple[int, Task], Vector] = {}
    cache: dict[int, Mapping[int, Vector]] = {}
    decoded: dict[int, Vector] = {}
    for r, row in enumerate(arr):
        slow = {int(w) for w in np.flatnonzero(row)}
        for w, tasks in enumerate(run.assignments()):
            if w in slow:
                continue
            for task in tasks:
                grads = cache.setdefault(task.job, job_gradients(task.job))
                results[(w, task)] = scheme.encode(w, task, grads)
        run.finish_round(slow)
        due = r - scheme.delay
        if due >= 0:
            decoded[due] = scheme.decode(due, {k: v for k, v in results.items()
                                               if k[1].job == due})
            for key in [k for k in results if k[1].job == due]:
                del results[key]
            cache.pop(due, None)
    return decoded
