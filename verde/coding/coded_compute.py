"""Coded computation over a pool of workers: BACC/SBACC evaluation and the fault-tolerant matmul.

The user-facing side of :mod:`verde.coding.bacc`, :mod:`verde.coding.sbacc` and
:mod:`verde.coding.strassen_ft`. A worker receives a :class:`Share` — its index and the
arguments of one pure function call (an encoded input for BACC/SBACC, two block operands for the
matmul) — and returns the result. The master encodes, gathers answers with a deadline
(:func:`verde.coding.gather.gather`, the loop the gradient-coding
:class:`~verde.coding.coordinator.Coordinator` uses too), treats whoever did not answer as a
straggler, and decodes.

Because a share is a pure function of explicit inputs, it maps one-to-one onto a verde provider
job later: the job's program is the function, its inputs the share's arrays (content-addressed),
its committed result the answer. Workers here are in-process (:class:`InProcessShareWorker`,
with injectable delays and faults).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from verde.coding._checks import check_int
from verde.coding.arrays import Array, is_torch, stack
from verde.coding.bacc import BACC
from verde.coding.gather import Cancelled, Gathered, gather, pause
from verde.coding.sbacc import SBACC, SBACCReport
from verde.coding.strassen_ft import FaultTolerantStrassen, MatmulDecoding, ReplicatedStrassen


@dataclass(frozen=True)
class Share:
    """One worker's job: call the computation on ``arguments`` (worker/node ``index``)."""

    index: int
    arguments: tuple[Array, ...]


class ShareWorker(Protocol):
    """Computes a share; should stop early (raise :class:`Cancelled`) once ``cancel`` is set."""

    def compute(self, share: Share, cancel: threading.Event) -> Array: ...


@dataclass
class InProcessShareWorker:
    """A worker in this process: ``function(*share.arguments)``, after ``delay`` seconds.

    ``delay`` is a number or a function of the share index; ``fault`` may replace the honest
    result (a cheating worker); ``fail`` makes the worker raise instead of answering.
    """

    function: Callable[..., Array]
    delay: float | Callable[[int], float] = 0.0
    fault: Callable[[Array], Array] | None = None
    fail: bool = False

    def compute(self, share: Share, cancel: threading.Event) -> Array:
        seconds = self.delay(share.index) if callable(self.delay) else self.delay
        if pause(float(seconds), cancel):
            raise Cancelled(f"share {share.index}: enough answers arrived")
        if self.fail:
            raise RuntimeError(f"share {share.index}: worker failed")
        out = self.function(*share.arguments)
        return self.fault(out) if self.fault else out


@dataclass(frozen=True)
class CodedRun:
    """The decoded result and who did what: answered, straggled, failed, located as faulty."""

    result: Any
    answered: tuple[int, ...]
    stragglers: tuple[int, ...]
    failed: dict[int, str]
    faulty: tuple[int, ...]
    elapsed_s: float
    report: SBACCReport | MatmulDecoding | None


def coded_evaluate(code: BACC | SBACC, inputs: Sequence[Array], workers: Sequence[ShareWorker],
                   *, wait_for: int | None = None, timeout_s: float | None = None) -> CodedRun:
    """``f(X_0) .. f(X_(K-1))`` (approximately) by BACC or SBACC over ``workers``.

    Waits until ``wait_for`` workers answered (default: all of them) or ``timeout_s`` passed;
    the rest are stragglers. SBACC additionally locates and drops wrong answers, or raises
    :class:`~verde.coding.errors.TooManyFaults`.
    """
    if not isinstance(code, BACC | SBACC):
        raise ValueError(f"code must be a BACC or SBACC, got {type(code).__name__}")
    shares = code.encode(inputs)
    got = _run(shares, workers, code.n_workers, wait_for, timeout_s)
    if isinstance(code, SBACC):
        estimates, report = code.decode_with_report(got.answers)
        return _outcome(estimates, got, report.faulty, report)
    return _outcome(code.decode(got.answers), got, (), None)


def coded_inference(model: Callable[[Array], Array], batch: Array, code: BACC | SBACC,
                    workers: Sequence[ShareWorker] | None = None, *, wait_for: int | None = None,
                    timeout_s: float | None = None) -> CodedRun:
    """A model (or one layer) on a batch, coded: the batch is cut into ``code.n_inputs`` equal
    groups along its first axis, each worker runs ``model`` on one encoded group, and the
    decoded outputs are stacked back into one batch (``result``). ``workers`` defaults to one
    in-process worker per share running ``model``."""
    k = code.n_inputs
    size = int(batch.shape[0])
    if size % k:
        raise ValueError(f"batch of {size} rows does not split into {k} equal groups")
    step = size // k
    groups = [batch[j * step:(j + 1) * step] for j in range(k)]
    pool = list(workers) if workers is not None else [
        InProcessShareWorker(model) for _ in range(code.n_workers)]
    run = coded_evaluate(code, groups, pool, wait_for=wait_for, timeout_s=timeout_s)
    outputs = run.result
    merged = (_torch_cat(outputs) if is_torch(outputs[0])
              else stack(outputs).reshape(-1, *outputs[0].shape[1:]))
    return CodedRun(merged, run.answered, run.stragglers, run.failed, run.faulty, run.elapsed_s,
                    run.report)


def coded_matmul(a: Array, b: Array, scheme: FaultTolerantStrassen | ReplicatedStrassen,
                 workers: Sequence[ShareWorker] | None = None, *, wait_for: int | None = None,
                 timeout_s: float | None = None) -> CodedRun:
    """``a @ b`` by the fault-tolerant Strassen-like scheme (or the replicated baseline): node
    ``i`` multiplies the two block combinations ``scheme.operands(a, b, i)``; missing nodes are
    erasures, faulty ones are located by the check relations (or the vote) and removed.
    ``workers`` defaults to in-process ``x @ y`` workers, one per node."""
    if not isinstance(scheme, FaultTolerantStrassen | ReplicatedStrassen):
        raise ValueError(f"scheme must be a FaultTolerantStrassen or ReplicatedStrassen, got "
                         f"{type(scheme).__name__}")
    pool = list(workers) if workers is not None else [
        InProcessShareWorker(_matmul) for _ in range(scheme.n_nodes)]
    operands = [scheme.operands(a, b, i) for i in range(scheme.n_nodes)]
    got = _run_arguments(operands, pool, scheme.n_nodes, wait_for, timeout_s)
    decoded = scheme.decode(a, b, got.answers)
    return _outcome(decoded.product, got, decoded.faulty, decoded)


def _matmul(x: Array, y: Array) -> Array:
    return x @ y


def _run(shares: Sequence[Array], workers: Sequence[ShareWorker], n: int, wait_for: int | None,
         timeout_s: float | None) -> Gathered:
    return _run_arguments([(s,) for s in shares], workers, n, wait_for, timeout_s)


def _run_arguments(arguments: Sequence[tuple[Array, ...]], workers: Sequence[ShareWorker],
                   n: int, wait_for: int | None, timeout_s: float | None) -> Gathered:
    if len(workers) != n:
        raise ValueError(f"need {n} workers, got {len(workers)}")
    needed = n if wait_for is None else check_int("wait_for", wait_for, 1, n + 1)
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="coded-share")
    try:
        return gather(pool, {i: partial(workers[i].compute, Share(i, tuple(args)))
                             for i, args in enumerate(arguments)},
                      enough=lambda answers: len(answers) >= needed, timeout_s=timeout_s)
    finally:  # stragglers were told to stop; do not wait for the ones still computing
        pool.shutdown(wait=False, cancel_futures=True)


def _outcome(result: Any, got: Gathered, faulty: Sequence[int],
             report: SBACCReport | MatmulDecoding | None) -> CodedRun:
    return CodedRun(result, tuple(sorted(got.answers)), got.unanswered, dict(got.failed),
                    tuple(faulty), got.elapsed_s, report)


def _torch_cat(values: Sequence[Array]) -> Array:
    import torch

    return torch.cat(list(values), dim=0)
