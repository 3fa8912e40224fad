"""Gather-with-deadline: run calls in a pool, stop once the answers in hand are enough.

Collectives block on the slowest rank; coded computation must not. Both the gradient-coding
:class:`~verde.coding.coordinator.Coordinator` and coded computation
(:mod:`verde.coding.coded_compute`) send every worker its share, wait only until the answers
in hand suffice (a decodable set, a deadline), then signal the rest to stop: work that is not
needed is not waited for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from typing import Any

from verde.coding.errors import CodingError


class Cancelled(CodingError):
    """Raised inside a worker whose task was cancelled because enough answers arrived."""


@dataclass(frozen=True)
class Gathered:
    """Answers (with their latency), failures (with the reason) and the workers still out."""

    answers: dict[int, Any]
    latency: dict[int, float]
    failed: dict[int, str]
    unanswered: tuple[int, ...]
    elapsed_s: float


def gather(pool: Executor, calls: Mapping[int, Callable[[threading.Event], Any]], *,
           enough: Callable[[Mapping[int, Any]], bool], timeout_s: float | None) -> Gathered:
    """Submit ``calls[key](cancel)`` for every key; return once ``enough(answers)`` holds, every
    call has finished, or ``timeout_s`` has passed — then set ``cancel`` for the rest.

    A call that raises is recorded in ``failed`` (type and message), never re-raised: a
    crashing worker is a straggler that explains itself.
    """
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    start = time.monotonic()
    cancel = threading.Event()
    futures: dict[Future[Any], int] = {pool.submit(fn, cancel): key for key, fn in calls.items()}
    answers: dict[int, Any] = {}
    latency: dict[int, float] = {}
    failed: dict[int, str] = {}
    pending = set(futures)
    deadline = None if timeout_s is None else start + timeout_s
    while pending and not enough(answers):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
        for fut in done:
            key = futures[fut]
            error = fut.exception()
            if error is None:
                answers[key] = fut.result()
                latency[key] = time.monotonic() - start
            else:
                failed[key] = f"{type(error).__name__}: {error}"
    cancel.set()
    for fut in pending:
        fut.cancel()
    unanswered = tuple(sorted(k for k in calls if k not in answers and k not in failed))
    return Gathered(answers, latency, failed, unanswered, time.monotonic() - start)


def pause(seconds: float, cancel: threading.Event) -> bool:
    """Sleep ``seconds`` in small slices; True as soon as ``cancel`` is set (then stop)."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if cancel.wait(min(left, 0.005)):
            return True
    return False
