"""SR-SGC and its baseline: one gradient code per job, plus selective repetition within T = B.

* :class:`SelectiveRepeatSGC` — the first scheme (SR-SGC) of Krishnan, Ebrahimi, Khisti (ICLR 2023):
  every job is coded with a gradient code tolerating only ``s = ceil(B lambda / (W-1+B))``
  stragglers. In round t every worker computes its task of job t. If ``v > s`` workers did not
  deliver job t, then in round t+B exactly ``v - s`` of them (lowest indices first) *repeat*
  their job-t task instead of their job-(t+B) task. Job t must decode at the end of round t+B
  from the answers of rounds t and t+B. Guarantee: every (B, W, lambda)-bursty pattern is
  decoded with delay T = B, for B dividing W-1 as the construction assumes (checked exhaustively
  over all conforming patterns for small n in tests/verde/coding/test_sequential_selective.py;
  the same search found no failure for a few B not dividing W-1 either, but we keep the
  assumption); load ``(s+1)/n``.
* :class:`PerRoundGC` — the plain gradient code with the same guarantee and no delay: it must
  absorb lambda stragglers in a single round, so ``s = lambda`` and load ``(lambda+1)/n``.

Codes are fractional repetition when (s+1) | n (bit-exact decoding), else cyclic repetition.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from verde.coding.base import GradientCode, Vector, ordered_sum
from verde.coding.errors import TooManyStragglers
from verde.coding.sequential_base import DeadlineMissed, Results, Task, check_workers
from verde.coding.sequential_model import BurstyStragglerModel
from verde.coding.sequential_multiplexed import CODED, group_code


class _OneCodePerJob:
    """What both schemes share: every job is coded with ``self.code`` alone."""

    code: GradientCode
    name: str
    n_workers: int
    stragglers: int

    @property
    def task_load(self) -> float:
        return (self.stragglers + 1) / self.n_workers

    @property
    def load(self) -> float:
        return self.task_load

    @property
    def n_partitions(self) -> int:
        return self.code.n_partitions

    def partitions_of(self, worker: int, task: Task) -> tuple[int, ...]:
        return _partitions_of(self.code, self.name, worker, task)

    def encode(self, worker: int, task: Task, partition_gradients: Mapping[int, Vector]
               ) -> Vector:
        self.partitions_of(worker, task)
        return self.code.encode(worker, partition_gradients)

    def decode(self, job: int, results: Results) -> Vector:
        return _decode(self.code, self.name, job, results)

    def reference_sum(self, partition_gradients: Mapping[int, Vector]) -> Vector:
        return ordered_sum([partition_gradients[p] for p in range(self.code.n_partitions)])


@dataclass(frozen=True)
class SelectiveRepeatSGC(_OneCodePerJob):
    """SR-SGC for ``n_workers`` under the (burst, window, lam) model; delay B."""

    n_workers: int
    burst: int
    window: int
    lam: int
    seed: int = 0
    name: str = "sr-sgc"
    model: BurstyStragglerModel = field(init=False, repr=False, compare=False)
    code: GradientCode = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.n_workers, int) or self.n_workers < 1:
            raise ValueError(f"n_workers must be a positive int, got {self.n_workers!r}")
        model = BurstyStragglerModel(self.burst, self.window, self.lam)
        if (self.window - 1) % self.burst:
            raise ValueError(f"SR-SGC needs B | W-1: B={self.burst}, W-1={self.window - 1}")
        if self.lam > self.n_workers:
            raise ValueError(f"lambda={self.lam} exceeds the {self.n_workers} workers")
        object.__setattr__(self, "model", model)
        s = self.stragglers
        if s >= self.n_workers:
            raise ValueError(f"SR-SGC would need s={s} >= n={self.n_workers} stragglers")
        object.__setattr__(self, "code", group_code(self.n_workers, s, self.seed))

    @property
    def stragglers(self) -> int:
        """s = ceil(B lambda / (W - 1 + B)): what the per-job code tolerates."""
        return math.ceil(self.burst * self.lam / (self.window - 1 + self.burst))

    @property
    def delay(self) -> int:
        return self.burst

    def admits(self, history: Sequence[Collection[int]], stragglers: Collection[int]) -> bool:
        return self.model.admits(history, stragglers)

    def start(self) -> OneCodePerJobRun:
        return OneCodePerJobRun(self, self.code, self.delay, repeat_after=self.burst)

    def model_note(self, history: Sequence[frozenset[int]]) -> str:
        return self.model.deadline_note(history)


@dataclass(frozen=True)
class PerRoundGC(_OneCodePerJob):
    """A gradient code tolerating ``stragglers`` per round, decoded in its own round (T = 0)."""

    n_workers: int
    stragglers: int
    seed: int = 0
    name: str = "gc"
    code: GradientCode = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", group_code(self.n_workers, self.stragglers, self.seed))

    @property
    def delay(self) -> int:
        return 0

    def admits(self, history: Sequence[Collection[int]], stragglers: Collection[int]) -> bool:
        """The master may skip any set whose complement still decodes this round's job."""
        slow = set(stragglers)
        return self.code.can_decode([w for w in range(self.n_workers) if w not in slow])

    def start(self) -> OneCodePerJobRun:
        return OneCodePerJobRun(self, self.code, 0, repeat_after=None)

    def model_note(self, history: Sequence[frozenset[int]]) -> str:
        last = sorted(history[-1]) if history else []
        return (f"round {len(history) - 1} had stragglers {last}, more than this code "
                f"tolerates (s={self.stragglers})")


class OneCodePerJobRun:
    """Run state of SR-SGC (``repeat_after`` = B) or a per-round code (``repeat_after`` None)."""

    def __init__(self, scheme: SelectiveRepeatSGC | PerRoundGC, code: GradientCode, delay: int,
                 repeat_after: int | None) -> None:
        self.scheme = scheme
        self.code = code
        self.delay = delay
        self.repeat_after = repeat_after
        self.round = 0
        self.history: list[frozenset[int]] = []
        self._heard: dict[int, set[int]] = {}  # live job -> workers whose task arrived

    def copy(self) -> OneCodePerJobRun:
        other = OneCodePerJobRun(self.scheme, self.code, self.delay, self.repeat_after)
        other.round = self.round
        other.history = list(self.history)
        other._heard = {j: set(h) for j, h in self._heard.items()}
        return other

    def assignments(self) -> list[list[Task]]:
        n = self.code.n_workers
        out = [[Task(self.round, CODED, 0)] for _ in range(n)]
        if self.repeat_after is not None:
            old = self.round - self.repeat_after
            if old >= 0:
                missing = [w for w in range(n) if w not in self._heard.get(old, set())]
                extra = len(missing) - self.code.stragglers
                for w in missing[:max(0, extra)]:
                    out[w] = [Task(old, CODED, 0)]  # selective repetition replaces new work
        return out

    def finish_round(self, stragglers: Collection[int]) -> list[int]:
        slow = check_workers(self.code.n_workers, stragglers)
        plan = self.assignments()
        was = {job: self.decodable(job) for job in self._heard}
        self._heard.setdefault(self.round, set())
        for w, tasks in enumerate(plan):
            if w not in slow:
                for task in tasks:
                    self._heard.setdefault(task.job, set()).add(w)
        self.history.append(slow)
        self.round += 1
        newly = sorted(j for j in self._heard if not was.get(j) and self.decodable(j))
        due = self.round - 1 - self.delay
        if due >= 0:
            heard = self._heard.get(due, set())
            if not self.code.can_decode(sorted(heard)):
                missing = sorted(set(range(self.code.n_workers)) - heard)
                raise DeadlineMissed(self.scheme.name, due, self.round - 1,
                                     f"no answer from workers {missing}",
                                     self.scheme.model_note(self.history))
            del self._heard[due]
        return newly

    def decodable(self, job: int) -> bool:
        if job < 0 or job >= self.round:
            return False
        if job not in self._heard:
            return job < self.round - self.delay
        return self.code.can_decode(sorted(self._heard[job]))

    def state_key(self) -> Hashable:
        jobs = tuple((self.round - j, frozenset(h)) for j, h in sorted(self._heard.items()))
        return min(self.round, self.delay + 1), jobs


def _partitions_of(code: GradientCode, name: str, worker: int, task: Task) -> tuple[int, ...]:
    if task.kind != CODED or task.index != 0:
        raise ValueError(f"{name} has no task {task}")
    return code.partitions_of(worker)


def _decode(code: GradientCode, name: str, job: int, results: Results) -> Vector:
    answers = {w: v for (w, task), v in results.items() if task.job == job}
    if not code.can_decode(list(answers)):
        raise TooManyStragglers(name, list(answers), f"job {job} does not decode")
    return code.decode(answers)
