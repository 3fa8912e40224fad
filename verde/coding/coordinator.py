"""Running coded training steps over a pool of workers that may straggle or lie.

The coordinator sends every worker its task, waits only until the answers in hand decode
(``code.can_decode``; for replicated groups, until every group has a deciding quorum), then
cancels the rest: work that is not needed is not waited for. It keeps a per-worker straggler
history that adaptive schemes and operators can read.

Workers are anything with ``compute(task, cancel) -> vector``: :class:`InProcessWorker` (for
tests and simulations, with injectable delays and faults) here, and
``verde.integration.coded_training.providers.ProviderWorker`` for verde providers in process or
over gRPC. A cancelled provider worker stops before its next partition; a job already running on the
provider runs to its end there (providers have no cancel call), the coordinator just does not
wait for it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol

from verde.coding.base import GradientCode, Vector, ordered_sum
from verde.coding.byzantine import GroupDecision, PartitionReferee, ReplicatedGroups
from verde.coding.errors import TooManyStragglers
from verde.coding.gather import Cancelled, gather, pause

# Cancelled lives in verde.coding.gather; workers (here and in the integration) raise it.
__all__ = ["Cancelled", "Coordinator", "InProcessWorker", "OnInsufficient", "StepOutcome",
           "StragglerHistory", "Worker", "WorkerTask"]

OnInsufficient = Literal["raise", "approximate"]


@dataclass(frozen=True)
class WorkerTask:
    """One worker's share of one step: which partitions, with which coefficients."""

    step: int
    worker: int
    partitions: tuple[int, ...]
    coefficients: tuple[float, ...]
    payload: Any = None


class Worker(Protocol):
    """Computes its encoded message for a task; should stop early once ``cancel`` is set."""

    def compute(self, task: WorkerTask, cancel: threading.Event) -> Vector: ...


@dataclass
class InProcessWorker:
    """A worker in this process: computes partition gradients with a given function.

    ``delay(step)`` seconds of simulated slowness are slept in small slices so cancellation is
    prompt; ``fault(step, message)`` may replace the honest message (a Byzantine worker).
    The combination ``sum_j c_j g_j`` runs in partition order, skipping the multiply when
    ``c_j == 1`` so repetition codes send exactly the partition gradient's bits.
    """

    partition_gradient: Callable[[Any, int], Vector]
    delay: Callable[[int], float] | None = None
    fault: Callable[[int, Vector], Vector] | None = None

    def compute(self, task: WorkerTask, cancel: threading.Event) -> Vector:
        if pause(self.delay(task.step) if self.delay else 0.0, cancel):
            raise Cancelled(f"worker {task.worker}: step {task.step} already decoded")
        total = None
        for p, c in zip(task.partitions, task.coefficients, strict=True):
            if cancel.is_set():
                raise Cancelled(f"worker {task.worker}: step {task.step} already decoded")
            g = self.partition_gradient(task.payload, p)
            term = g if c == 1.0 else g * c
            total = term if total is None else total + term
        return self.fault(task.step, total) if self.fault else total


@dataclass
class StragglerHistory:
    """Per-worker record: on-time answers, straggles, recent latencies."""

    window: int = 50
    on_time: dict[int, int] = field(default_factory=dict)
    straggled: dict[int, int] = field(default_factory=dict)
    latencies: dict[int, deque[float]] = field(default_factory=dict)

    def record(self, worker: int, answered: bool, latency: float | None) -> None:
        book = self.on_time if answered else self.straggled
        book[worker] = book.get(worker, 0) + 1
        if latency is not None:
            self.latencies.setdefault(worker, deque(maxlen=self.window)).append(latency)

    def straggle_rate(self, worker: int) -> float:
        total = self.on_time.get(worker, 0) + self.straggled.get(worker, 0)
        return self.straggled.get(worker, 0) / total if total else 0.0


@dataclass(frozen=True)
class StepOutcome:
    """What one coded step produced and who took part."""

    step: int
    gradient: Vector
    answered: tuple[int, ...]
    stragglers: tuple[int, ...]
    failed: tuple[int, ...]
    decisions: tuple[GroupDecision, ...]
    approximate: bool
    elapsed_s: float

    @property
    def faulty(self) -> tuple[int, ...]:
        return tuple(sorted({w for d in self.decisions for w in d.faulty}))


class Coordinator:
    """Runs coded steps: dispatch, wait for a decodable set, cancel the rest, decode."""

    def __init__(
        self,
        code: GradientCode,
        workers: Sequence[Worker],
        *,
        referee: Callable[[int, Any], PartitionReferee] | None = None,
        on_insufficient: OnInsufficient = "raise",
        timeout_s: float | None = None,
    ) -> None:
        if len(workers) != code.n_workers:
            raise ValueError(f"code expects {code.n_workers} workers, got {len(workers)}")
        if on_insufficient not in ("raise", "approximate"):
            raise ValueError(f"on_insufficient must be 'raise' or 'approximate', got "
                             f"{on_insufficient!r}")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        self.code = code
        self.workers = list(workers)
        self.referee = referee
        self.on_insufficient = on_insufficient
        self.timeout_s = timeout_s
        self.history = StragglerHistory()
        self._pool = ThreadPoolExecutor(max_workers=len(workers), thread_name_prefix="coded")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tasks(self, step: int, payload: Any) -> list[WorkerTask]:
        out = []
        for w in range(self.code.n_workers):
            parts = self.code.partitions_of(w)
            coeffs = (self.code.coefficients_of(w) if hasattr(self.code, "coefficients_of")
                      else (1.0,) * len(parts))
            out.append(WorkerTask(step, w, parts, tuple(coeffs), payload))
        return out

    def run_step(self, step: int, payload: Any = None) -> StepOutcome:
        start = time.monotonic()
        got = gather(self._pool,
                     {t.worker: partial(self.workers[t.worker].compute, t)
                      for t in self.tasks(step, payload)},
                     enough=self._decodable, timeout_s=self.timeout_s)
        for w in range(self.code.n_workers):
            self.history.record(w, w in got.answers, got.latency.get(w))
        gradient, decisions, approximate = self._decode(step, payload, got.answers, got.failed)
        return StepOutcome(step, gradient, tuple(sorted(got.answers)), got.unanswered,
                           tuple(sorted(got.failed)), decisions, approximate,
                           time.monotonic() - start)

    def _decodable(self, answers: Mapping[int, Vector]) -> bool:
        if isinstance(self.code, ReplicatedGroups):
            return self.code.decidable(answers)
        return self.code.can_decode(list(answers))

    def _decode(
        self, step: int, payload: Any, answers: Mapping[int, Vector], failed: Mapping[int, str]
    ) -> tuple[Vector, tuple[GroupDecision, ...], bool]:
        if self.code.can_decode(list(answers)):
            if isinstance(self.code, ReplicatedGroups):
                referee = self.referee(step, payload) if self.referee else None
                grad, decisions = self.code.decode_groups(answers, referee)
                return grad, decisions, False
            return self.code.decode(answers), (), False
        if self.on_insufficient == "approximate" and answers:
            return _reweighted_partial(self.code, answers), (), True
        why = "; ".join(f"worker {w} failed ({e})" for w, e in sorted(failed.items()))
        raise TooManyStragglers(type(self.code).__name__, list(answers),
                                f"too many workers straggled or failed at step {step}"
                                + (f": {why}" if why else ""))


def _reweighted_partial(code: GradientCode, answers: Mapping[int, Vector]) -> Vector:
    """Fallback: unbiased reweighting over the partitions that some worker returned alone.

    Only meaningful for codes whose messages are single partitions (repetition layouts); for
    others there is no honest partial answer and the caller must raise instead.
    """
    seen: dict[int, Vector] = {}
    for w in sorted(answers):
        parts = code.partitions_of(w)
        if len(parts) == 1 and getattr(code, "coefficients_of", None) is None:
            seen.setdefault(parts[0], answers[w])
    if not seen:
        raise TooManyStragglers(type(code).__name__, list(answers),
                                "no partial answer can be reweighted for this code")
    total = ordered_sum([seen[p] for p in sorted(seen)])
    return total * (code.n_partitions / len(seen))
