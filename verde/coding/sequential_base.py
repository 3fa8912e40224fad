"""What the sequential gradient-coding schemes share: tasks, a round-by-round run, deadlines.

Sequential gradient coding (Krishnan, Ebrahimi, Khisti, ICLR 2023): job t (the gradient of
training step t) starts in round t and must be decodable at the end of round t+T. In every round
each worker computes a list of *tasks*, possibly for several jobs at once; a straggler's results
of that round never arrive. A scheme is a frozen description (who computes what, how to decode);
:meth:`start` gives a mutable run that the master drives one round at a time:

    run = scheme.start()
    tasks = run.assignments()          # tasks[w]: what worker w computes this round
    decoded = run.finish_round(slow)   # slow: workers whose results did not arrive

``finish_round`` raises :class:`DeadlineMissed` when the job whose deadline is this round cannot
be decoded, naming where the straggler pattern left the scheme's straggler model.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from verde.coding.base import Vector
from verde.coding.errors import CodingError


@dataclass(frozen=True, order=True)
class Task:
    """One unit of work of a worker in a round: part ``index`` of kind ``kind`` of job ``job``.

    Kinds: ``"chunk"`` (an uncoded partition owned by the worker, M-SGC's D1), ``"coded"`` (the
    worker's gradient-code message for coded group ``index``).
    """

    job: int
    kind: str
    index: int


Results = Mapping[tuple[int, Task], Vector]  # (worker, task) -> what the worker sent


class DeadlineMissed(CodingError):
    """A job was not decodable at the end of round job+T."""

    def __init__(self, scheme: str, job: int, round_: int, missing: str, model_note: str) -> None:
        self.job = job
        self.round = round_
        super().__init__(
            f"{scheme}: job {job} is not decodable at its deadline (end of round {round_}): "
            f"{missing}; {model_note}"
        )


class SequentialRun(Protocol):
    """Mutable state of one scheme over a stream of rounds."""

    round: int
    history: list[frozenset[int]]

    def assignments(self) -> list[list[Task]]: ...

    def finish_round(self, stragglers: Collection[int]) -> list[int]: ...

    def decodable(self, job: int) -> bool: ...

    def state_key(self) -> Hashable: ...

    def copy(self) -> SequentialRun: ...


class SequentialScheme(Protocol):
    """A sequential scheme: task plan, per-task load, guarantee and exact decoding."""

    name: str
    n_workers: int

    @property
    def delay(self) -> int: ...

    @property
    def task_load(self) -> float: ...

    @property
    def n_partitions(self) -> int: ...

    def start(self) -> SequentialRun: ...

    def admits(self, history: Sequence[Collection[int]], stragglers: Collection[int]) -> bool: ...

    def partitions_of(self, worker: int, task: Task) -> tuple[int, ...]: ...

    def encode(self, worker: int, task: Task, partition_gradients: Mapping[int, Vector]
               ) -> Vector: ...

    def decode(self, job: int, results: Results) -> Vector: ...

    def reference_sum(self, partition_gradients: Mapping[int, Vector]) -> Vector: ...


def check_workers(n: int, stragglers: Collection[int]) -> frozenset[int]:
    """Validate a straggler set against ``n`` workers."""
    out = frozenset(int(w) for w in stragglers)
    bad = sorted(w for w in out if not 0 <= w < n)
    if bad:
        raise ValueError(f"stragglers must be workers in [0, {n}), got {bad}")
    return out
