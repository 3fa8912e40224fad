"""M-SGC: multiplexed sequential gradient coding (Krishnan, Ebrahimi, Khisti, ICLR 2023).

Construction (parameters n workers and a (B, W, lambda) bursty straggler model, B < W):

* Delay ``T = W - 2 + B``. Job t is worked on in rounds t .. t+T, through ``W - 1 + B``
  equal-sized *slots* per worker, one per round, diagonally interleaved: in round r, slot m of
  every worker belongs to job r - m, so each round a worker serves W-1+B jobs at once.
* Job t's data is cut in two parts. D1: ``n (W-1)`` uncoded chunks, W-1 *owned* by each worker
  and never replicated. D2: B groups, each coded with a gradient code tolerating ``lambda``
  stragglers among the n workers (fractional repetition when (lambda+1) | n, bit-exact; cyclic
  repetition otherwise); one coded task of a group is as large as one chunk.
* Adaptive multiplexing: in slot m < W-1 a worker computes its next unfinished chunk. In slot
  W-1+b it computes its coded task of group b if it has finished all its W-1 chunks, and
  otherwise *repeats*: its next unfinished chunk. So a worker that straggled spends its later
  slots on the chunks only it holds, and the code absorbs the groups it then misses.
* Job t decodes when every chunk arrived and every group decodes (n - lambda coded answers).
  A chunk's message is the worker's running sum of its chunks so far, so decoding adds one
  vector per worker plus one per group (the master's cost per round is n + B additions).

Guarantee (derived here, checked exhaustively in tests/verde/coding/test_sequential_multiplexed.py
over every conforming pattern for small n, via a memoised search of all reachable states):
**every straggler pattern in the (B, W, lambda)-bursty model** (see
:mod:`verde.coding.sequential_model`) **is decoded with delay T = W-2+B.** Proof sketch: (i) in
any W-1+B consecutive rounds a conforming worker straggles at most B times (two straggles at least
B apart are at least W apart), so it finishes its W-1 chunks of job t by round t+T; (ii) a worker
that misses group b's slot (round t+W-1+b) either straggles then, or has more than b straggles in
rounds t..t+W-2+b, hence straggles in rounds t+b .. t+W-1+b — a window of W rounds, which holds
at most lambda stragglers. So each group keeps n - lambda answers.

Normalised load (fraction of one job's data a worker computes per round), from equal slots:
``(lambda+1)(W-1+B) / (n ((lambda+1)(W-1) + B))`` for lambda < n, ``(W-1+B) / (n (W-1))`` for
lambda = n (no D2). A plain gradient code with the same guarantee and T = 0 must tolerate lambda
stragglers in one round: load ``(lambda+1)/n``; selective repetition (SR-SGC,
:mod:`verde.coding.sequential_selective`) needs ``(ceil(B lambda / (W-1+B)) + 1)/n`` with T = B.
For n=20 and (B, W, lambda) = (2, 5, 4) (bench/coding_bench.py): M-SGC 0.068 with T = 5,
SR-SGC 0.15 (s = 2) with T = 2, plain GC 0.25 (s = 4) with T = 0; uncoded is 0.05.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from verde.coding.base import GradientCode, Vector, ordered_sum
from verde.coding.cyclic import CyclicRepetitionCode
from verde.coding.errors import TooManyStragglers
from verde.coding.fractional import FractionalRepetitionCode
from verde.coding.sequential_base import DeadlineMissed, Results, Task, check_workers
from verde.coding.sequential_model import BurstyStragglerModel

CHUNK, CODED = "chunk", "coded"


def group_code(n: int, stragglers: int, seed: int = 0) -> GradientCode:
    """Fractional repetition when (s+1) | n (bit-exact decoding), else cyclic repetition."""
    if n % (stragglers + 1) == 0:
        return FractionalRepetitionCode(n, stragglers)
    return CyclicRepetitionCode(n, stragglers, seed=seed, max_condition=1e8)


@dataclass(frozen=True)
class MultiplexedSGC:
    """M-SGC for ``n_workers`` under the (burst, window, lam) model; delay ``W-2+B``."""

    n_workers: int
    burst: int
    window: int
    lam: int
    seed: int = 0
    name: str = "m-sgc"
    model: BurstyStragglerModel = field(init=False, repr=False, compare=False)
    code: GradientCode | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.n_workers, int) or self.n_workers < 1:
            raise ValueError(f"n_workers must be a positive int, got {self.n_workers!r}")
        model = BurstyStragglerModel(self.burst, self.window, self.lam)
        if self.lam > self.n_workers:
            raise ValueError(f"lambda={self.lam} exceeds the {self.n_workers} workers")
        object.__setattr__(self, "model", model)
        code = group_code(self.n_workers, self.lam, self.seed) if self.lam < self.n_workers \
            else None
        object.__setattr__(self, "code", code)

    # --- plan -------------------------------------------------------------------------------
    @property
    def delay(self) -> int:
        return self.window - 2 + self.burst

    @property
    def slots(self) -> int:
        return self.window - 1 + self.burst

    @property
    def chunks_per_worker(self) -> int:
        return self.window - 1

    @property
    def n_groups(self) -> int:
        return self.burst if self.code is not None else 0

    @property
    def n_partitions(self) -> int:
        per_group = self.code.n_partitions if self.code is not None else 0
        return self.n_workers * self.chunks_per_worker + self.n_groups * per_group

    @property
    def task_load(self) -> float:
        """One slot's share of a job's data (a chunk, or one coded task of a group)."""
        n, w1, lam = self.n_workers, self.chunks_per_worker, self.lam
        if self.code is None:
            return 1.0 / (n * w1)
        return (lam + 1) / (n * ((lam + 1) * w1 + self.burst))

    @property
    def load(self) -> float:
        """Normalised per-round load in steady state: W-1+B slots."""
        return self.slots * self.task_load

    def admits(self, history: Sequence[Collection[int]], stragglers: Collection[int]) -> bool:
        return self.model.admits(history, stragglers)

    def start(self) -> MultiplexedRun:
        return MultiplexedRun(self)

    # --- data and decoding ------------------------------------------------------------------
    def partitions_of(self, worker: int, task: Task) -> tuple[int, ...]:
        """The partitions whose gradients ``worker`` computes for ``task`` in its slot."""
        if not 0 <= worker < self.n_workers:
            raise ValueError(f"worker must be in [0, {self.n_workers}), got {worker}")
        if task.kind == CHUNK:
            if not 0 <= task.index < self.chunks_per_worker:
                raise ValueError(f"chunk index must be in [0, {self.chunks_per_worker})")
            return (worker * self.chunks_per_worker + task.index,)
        if task.kind == CODED and self.code is not None and 0 <= task.index < self.n_groups:
            base = self._group_base(task.index)
            return tuple(base + p for p in self.code.partitions_of(worker))
        raise ValueError(f"{self.name} has no task {task}")

    def encode(self, worker: int, task: Task, partition_gradients: Mapping[int, Vector]
               ) -> Vector:
        """The message for ``task``. A chunk's message is the *running sum* of the worker's chunks
        0..j (it computed the earlier ones in earlier slots), so the master keeps only each
        worker's last message and decoding adds n + B vectors per job instead of n(W-1) + B.
        """
        parts = self.partitions_of(worker, task)
        if task.kind == CHUNK:
            parts = tuple(range(parts[0] - task.index, parts[0] + 1))
        missing = [p for p in parts if p not in partition_gradients]
        if missing:
            raise ValueError(f"worker {worker} needs the gradients of partitions {missing}")
        if task.kind == CHUNK:
            return ordered_sum([partition_gradients[p] for p in parts])
        assert self.code is not None  # partitions_of rejected coded tasks without a code
        base = self._group_base(task.index)
        return self.code.encode(worker, {p - base: partition_gradients[p] for p in parts})

    def decode(self, job: int, results: Results) -> Vector:
        """Job ``job``'s gradient: each worker's chunk sum in worker order, then each group.

        With fractional repetition the bits equal :meth:`reference_sum` whichever workers
        answered. Raises :class:`TooManyStragglers` naming what is missing.
        """
        last = self.chunks_per_worker - 1
        chunk_sums: dict[int, Vector] = {}
        coded: list[dict[int, Vector]] = [{} for _ in range(self.n_groups)]
        for (worker, task), value in results.items():
            if task.job != job:
                continue
            if task.kind == CHUNK and task.index == last:
                chunk_sums[worker] = value
            elif task.kind == CODED:
                coded[task.index][worker] = value
        missing = [w for w in range(self.n_workers) if w not in chunk_sums]
        if missing:
            raise TooManyStragglers(self.name, sorted({w for w, _ in results}),
                                    f"job {job}: the last uncoded chunk of workers {missing} "
                                    "never arrived")
        terms = [chunk_sums[w] for w in range(self.n_workers)]
        for b, answers in enumerate(coded):
            assert self.code is not None  # n_groups is 0 without a code
            if not self.code.can_decode(list(answers)):
                raise TooManyStragglers(self.name, sorted(answers),
                                        f"job {job}: coded group {b} does not decode")
            terms.append(self.code.decode(answers))
        return _sum_in_place(terms)

    def reference_sum(self, partition_gradients: Mapping[int, Vector]) -> Vector:
        """The uncoded result in decoding order (the bits FR decoding reproduces)."""
        c = self.chunks_per_worker
        terms = [ordered_sum([partition_gradients[w * c + j] for j in range(c)])
                 for w in range(self.n_workers)]
        for b in range(self.n_groups):
            assert self.code is not None
            base = self._group_base(b)
            terms.append(ordered_sum([partition_gradients[base + q]
                                      for q in range(self.code.n_partitions)]))
        return ordered_sum(terms)

    def _group_base(self, group: int) -> int:
        assert self.code is not None
        return self.n_workers * self.chunks_per_worker + group * self.code.n_partitions


class MultiplexedRun:
    """M-SGC state: per live job, chunks done per worker and the workers each group heard from."""

    def __init__(self, scheme: MultiplexedSGC) -> None:
        self.scheme = scheme
        self.round = 0
        self.history: list[frozenset[int]] = []
        self._chunks: dict[int, np.ndarray] = {}  # job -> chunks finished per worker
        self._groups: dict[int, list[set[int]]] = {}  # job -> workers heard, per group

    def copy(self) -> MultiplexedRun:
        other = MultiplexedRun(self.scheme)
        other.round = self.round
        other.history = list(self.history)
        other._chunks = {j: c.copy() for j, c in self._chunks.items()}
        other._groups = {j: [set(g) for g in gs] for j, gs in self._groups.items()}
        return other

    def assignments(self) -> list[list[Task]]:
        s = self.scheme
        out: list[list[Task]] = [[] for _ in range(s.n_workers)]
        for m in range(s.slots):
            job = self.round - m
            if job < 0:
                break
            done = self._job_chunks(job)
            for w in range(s.n_workers):
                if done[w] < s.chunks_per_worker:
                    out[w].append(Task(job, CHUNK, int(done[w])))
                elif m >= s.chunks_per_worker and s.code is not None:
                    out[w].append(Task(job, CODED, m - s.chunks_per_worker))
        return out

    def finish_round(self, stragglers: Collection[int]) -> list[int]:
        """Record this round's stragglers; return the jobs decodable now for the first time."""
        s = self.scheme
        slow = check_workers(s.n_workers, stragglers)
        plan = self.assignments()
        was = {job: self.decodable(job) for job in self._live_jobs()}
        for w, tasks in enumerate(plan):
            if w in slow:
                continue
            for task in tasks:
                if task.kind == CHUNK:
                    self._job_chunks(task.job)[w] += 1
                else:
                    self._job_groups(task.job)[task.index].add(w)
        self.history.append(slow)
        self.round += 1
        newly = [job for job in self._live_jobs() if not was.get(job) and self.decodable(job)]
        due = self.round - 1 - s.delay
        if due >= 0:
            if not self.decodable(due):
                raise DeadlineMissed(s.name, due, self.round - 1, self._missing(due),
                                     self._model_note())
            self._chunks.pop(due, None)
            self._groups.pop(due, None)
        return newly

    def decodable(self, job: int) -> bool:
        s = self.scheme
        if job < 0 or job >= self.round:
            return False
        if job not in self._chunks:
            return job < self.round - s.delay  # retired jobs were checked at their deadline
        if (self._chunks[job] < s.chunks_per_worker).any():
            return False
        code = s.code
        return code is None or all(code.can_decode(sorted(g)) for g in self._job_groups(job))

    def state_key(self) -> Hashable:
        """Everything that decides future plans and decodability, relative to the round."""
        s = self.scheme
        jobs = []
        for job in self._live_jobs():
            groups = tuple(frozenset(g) for g in self._job_groups(job))
            jobs.append((self.round - job, tuple(int(c) for c in self._chunks[job]), groups))
        return min(self.round, s.slots), tuple(jobs)

    # --- internals --------------------------------------------------------------------------
    def _live_jobs(self) -> list[int]:
        return sorted(self._chunks)

    def _job_chunks(self, job: int) -> np.ndarray:
        if job not in self._chunks:
            self._chunks[job] = np.zeros(self.scheme.n_workers, dtype=np.int64)
            self._groups[job] = [set() for _ in range(self.scheme.n_groups)]
        return self._chunks[job]

    def _job_groups(self, job: int) -> list[set[int]]:
        self._job_chunks(job)
        return self._groups[job]

    def _missing(self, job: int) -> str:
        s = self.scheme
        short = {w: s.chunks_per_worker - int(c) for w, c in enumerate(self._chunks[job])
                 if c < s.chunks_per_worker}
        parts = [f"chunks missing per worker {short}"] if short else []
        for b, g in enumerate(self._job_groups(job)):
            if s.code is not None and not s.code.can_decode(sorted(g)):
                parts.append(f"group {b} heard only from workers {sorted(g)}")
        return "; ".join(parts)

    def _model_note(self) -> str:
        return self.scheme.model.deadline_note(self.history)


def _sum_in_place(terms: list[Vector]) -> Vector:
    """:func:`ordered_sum`'s exact bits (same additions, same order) without a new array per term.

    Decoding adds n(W-1) + B vectors per job each round; allocating a fresh result per addition
    made that the master's bottleneck. Mixed dtypes fall back to :func:`ordered_sum` (in-place
    addition would not promote).
    """
    if len({str(t.dtype) for t in terms}) != 1:
        return ordered_sum(terms)
    total = terms[0].clone() if hasattr(terms[0], "clone") else terms[0].copy()
    for t in terms[1:]:
        total += t
    return total
