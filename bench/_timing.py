"""Timing for the benches: the minimum over repeats, since the machine may be shared."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_time(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Minimum wall time over ``repeats`` runs after one warm-up (the machine may be shared).

    A call slower than half a second is timed once more only (the slow baselines); a call
    under 20 ms gets 25 repeats."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    if first > 0.5:
        repeats = 1
    elif first < 0.02:
        repeats = 25  # millisecond rules: more samples, so the minimum is not scheduler noise
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
