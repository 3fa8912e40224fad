"""Coded computation over a pool of workers: BACC/SBACC evaluation and the fault-tolerant matmul.

The user-facing side of :mod:`verde.coding.bacc`, :mod:`verde.coding.sbacc` and
:mod:`verde.coding.strassen_ft`. A worker receives a :class:`Share` — its index and the
arguments of one pure function call (an encoded input for BACC/SBACC, two block operands for the
matmul) — and returns the result. The master encodes, gathers answers with a deadline
(:func:`verde.coding.gather.gather`, the loop the gradient-coding
:class:`~verde.coding.coordinator.Coordinator` uses too), treats whoever did not answer as a
straggler, and decodes.

Because a share is a pure function of explicit inputs, it maps one-to-one onto a verde provider
job: the job's program is the function, its inputs the share's arrays (content-addressed), its
committed result the answer (``verde.integration.coded_compute``). Workers here are in-process
(:class:`InProcessShareWorker`, with injectable delays and faults).

A :class:`ShareReferee` settles the shares the code locates as wrong: given a located share and
its answer, it returns a verified answer (over providers: the side that won a verde dispute
against a second provider recomputing the share) or ``None`` (nothing could be verified; the
share is then an erasure). The answers are decoded again with the verified ones, so a located
share costs one recomputation instead of the code's correction capability, and the worker is
named by a dispute, not only by the code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

import numpy as np

from verde.coding._checks import check_int
from verde.coding.arrays import Array, is_torch, stack
from verde.coding.bacc import BACC
from verde.coding.errors import TooManyFaults, TooManyStragglers
from verde.coding.gather import Cancelled, Gathered, gather, pause
from verde.coding.sbacc import SBACC, SBACCReport
from verde.coding.strassen_ft import FaultTolerantStrassen, MatmulDecoding, ReplicatedStrassen


@dataclass(frozen=True)
class Share:
    """One worker's job: call the computation on ``arguments`` (worker/node ``index``)."""

    index: int
    arguments: tuple[Array, ...]


class ShareReferee(Protocol):
    """Verifies a share the code located as wrong (see the module docstring)."""

    def settle(self, share: Share, answer: Array) -> Array | None: ...


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
    """The decoded result and who did what: answered, straggled, failed, located as faulty.

    ``faulty`` are the shares the code located in the answers as they came in; with a referee,
    ``refereed`` says for each of them whether a verified answer replaced it (True) or it was
    dropped as an erasure (False), and ``report`` is the decoding of the final answers.
    """

    result: Any
    answered: tuple[int, ...]
    stragglers: tuple[int, ...]
    failed: dict[int, str]
    faulty: tuple[int, ...]
    elapsed_s: float
    report: SBACCReport | MatmulDecoding | None
    refereed: dict[int, bool] = field(default_factory=dict)


def coded_evaluate(code: BACC | SBACC, inputs: Sequence[Array], workers: Sequence[ShareWorker],
                   *, wait_for: int | None = None, timeout_s: float | None = None,
                   referee: ShareReferee | None = None) -> CodedRun:
    """``f(X_0) .. f(X_(K-1))`` (approximately) by BACC or SBACC over ``workers``.

    Waits until ``wait_for`` workers answered (default: all of them) or ``timeout_s`` passed;
    the rest are stragglers. SBACC additionally locates and drops wrong answers (or raises
    :class:`~verde.coding.errors.TooManyFaults`); ``referee`` settles the located ones.
    """
    if not isinstance(code, BACC | SBACC):
        raise ValueError(f"code must be a BACC or SBACC, got {type(code).__name__}")
    shares = [Share(i, (s,)) for i, s in enumerate(code.encode(inputs))]
    got = _run_shares(shares, workers, code.n_workers, wait_for, timeout_s)

    def decode(answers: Mapping[int, Array]) -> _Decoded:
        if isinstance(code, SBACC):
            estimates, report = code.decode_with_report(answers)
            return estimates, report.faulty, report
        return code.decode(answers), (), None

    return _refereed(decode, shares, got, referee)


def coded_inference(model: Callable[[Array], Array] | None, batch: Array, code: BACC | SBACC,
                    workers: Sequence[ShareWorker] | None = None, *, wait_for: int | None = None,
                    timeout_s: float | None = None,
                    referee: ShareReferee | None = None) -> CodedRun:
    """A model (or one layer) on a batch, coded: the batch is cut into ``code.n_inputs`` equal
    groups along its first axis, each worker runs ``model`` on one encoded group, and the
    decoded outputs are stacked back into one batch (``result``). ``workers`` defaults to one
    in-process worker per share running ``model`` (which may be ``None`` when workers are
    given: they know the model, as provider workers do).

    The default workers call ``model`` from several threads at once, one per share, so it
    must be thread-safe: a model that swaps a shared module's parameters while it runs
    (``torch.func.functional_call``) holds a lock around the call, or one call runs on the
    parameters another call just restored.
    """
    k = code.n_inputs
    size = int(batch.shape[0])
    if size % k:
        raise ValueError(f"batch of {size} rows does not split into {k} equal groups")
    step = size // k
    groups = [batch[j * step:(j + 1) * step] for j in range(k)]
    if workers is None and model is None:
        raise ValueError("coded_inference needs a model or workers that run one")
    pool = list(workers) if workers is not None else [
        InProcessShareWorker(model) for _ in range(code.n_workers)]  # type: ignore[arg-type]
    run = coded_evaluate(code, groups, pool, wait_for=wait_for, timeout_s=timeout_s,
                         referee=referee)
    outputs = run.result
    merged = (_torch_cat(outputs) if is_torch(outputs[0])
              else stack(outputs).reshape(-1, *outputs[0].shape[1:]))
    return replace(run, result=merged)


def coded_matmul(a: Array, b: Array, scheme: FaultTolerantStrassen | ReplicatedStrassen,
                 workers: Sequence[ShareWorker] | None = None, *, wait_for: int | None = None,
                 timeout_s: float | None = None,
                 referee: ShareReferee | None = None) -> CodedRun:
    """``a @ b`` by the fault-tolerant Strassen-like scheme (or the replicated baseline): node
    ``i`` multiplies the two block combinations ``scheme.operands(a, b, i)``; missing nodes are
    erasures, faulty ones are located by the check relations (or the vote) and removed.
    ``workers`` defaults to in-process ``x @ y`` workers, one per node; ``referee`` settles
    the located nodes."""
    if not isinstance(scheme, FaultTolerantStrassen | ReplicatedStrassen):
        raise ValueError(f"scheme must be a FaultTolerantStrassen or ReplicatedStrassen, got "
                         f"{type(scheme).__name__}")
    pool = list(workers) if workers is not None else [
        InProcessShareWorker(_matmul) for _ in range(scheme.n_nodes)]
    shares = [Share(i, tuple(scheme.operands(a, b, i))) for i in range(scheme.n_nodes)]
    got = _run_shares(shares, pool, scheme.n_nodes, wait_for, timeout_s)

    def decode(answers: Mapping[int, Array]) -> _Decoded:
        decoded = scheme.decode(a, b, answers)
        return decoded.product, decoded.faulty, decoded

    return _refereed(decode, shares, got, referee)


def _matmul(x: Array, y: Array) -> Array:
    return x @ y


#: A decoder's answer: the result, the shares it located as wrong, and its report.
_Decoded = tuple[Any, tuple[int, ...], SBACCReport | MatmulDecoding | None]


def _refereed(decode: Callable[[Mapping[int, Array]], _Decoded], shares: Sequence[Share],
              got: Gathered, referee: ShareReferee | None) -> CodedRun:
    """Decode; then, with a referee, replace every located share by its verified answer (or
    drop it) and decode again, until the code locates no share not yet refereed; where the
    code refuses (more faults than it corrects), its candidates go to the referee first. An
    answer the referee upheld goes back in; if the code locates it again it stays out (the
    code's own call: an approximate code may flag an honest answer beyond its tolerance). A
    located answer that is upheld also shows the location was wrong (SBACC can pick a wrong set
    at its bound), so then every answer not yet verified goes to the referee: the result rests
    on verified answers, at the cost of recomputing them.
    ``faulty`` of the run is what the code located (or named as candidates) at first."""
    answers = dict(got.answers)
    refereed: dict[int, bool] = {}
    first: tuple[int, ...] | None = None
    audit = False  # set once the code located an answer the referee then upheld
    while True:
        located: tuple[int, ...] = ()
        try:
            result, located, report = decode(answers)
        except TooManyStragglers as exc:
            if not got.failed:
                raise
            reasons = "; ".join(f"share {i}: {why}" for i, why in sorted(got.failed.items())[:3])
            raise TooManyStragglers(exc.scheme, exc.answered,
                                    f"{exc.needed} ({len(got.failed)} failed: {reasons})",
                                    ) from exc
        except TooManyFaults as exc:
            # Beyond the code: recompute its candidates (or, when it names none, every answer
            # not yet verified) at the referee, and decode the verified answers again.
            todo = [i for i in (exc.candidates or sorted(answers))
                    if i in answers and i not in refereed]
            if referee is None or not todo:
                raise
            first = tuple(exc.candidates or todo) if first is None else first
        else:
            first = tuple(located) if first is None else first
            # A located answer the referee upheld means the code's location was wrong, so a
            # wrong answer may still be among the kept ones: then every answer is verified.
            todo = [i for i in (sorted(answers) if audit else located) if i not in refereed]
            if referee is None or not todo:
                break
        for i in todo:
            value = referee.settle(shares[i], answers[i])
            refereed[i] = value is not None
            if value is None:
                del answers[i]
                continue
            audit = audit or (i in located and _same(value, answers[i]))
            answers[i] = value
    return CodedRun(result, tuple(sorted(got.answers)), got.unanswered, dict(got.failed),
                    first, got.elapsed_s, report, refereed)


def _same(a: Array, b: Array) -> bool:
    """Bit for bit the same answer (what an upheld answer is)."""
    if is_torch(a) and is_torch(b):
        import torch

        return bool(a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _run_shares(shares: Sequence[Share], workers: Sequence[ShareWorker], n: int,
                wait_for: int | None, timeout_s: float | None) -> Gathered:
    if len(workers) != n:
        raise ValueError(f"need {n} workers, got {len(workers)}")
    needed = n if wait_for is None else check_int("wait_for", wait_for, 1, n + 1)
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="coded-share")
    try:
        return gather(pool, {s.index: partial(workers[s.index].compute, s) for s in shares},
                      enough=lambda answers: len(answers) >= needed, timeout_s=timeout_s)
    finally:  # stragglers were told to stop; do not wait for the ones still computing
        pool.shutdown(wait=False, cancel_futures=True)


def _torch_cat(values: Sequence[Array]) -> Array:
    import torch

    return torch.cat(list(values), dim=0)
