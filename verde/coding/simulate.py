"""Compare straggler schemes on the same sampled delays: time per step and worker load.

Time model (Tandon et al. 2017, section 6; Krishnan et al. 2023): one worker needs time 1 for
the whole step's data; a worker with load L and slowdown x finishes at ``L * x``. A scheme's
step time is the moment the answers in hand decode. Everything is computed from the same
slowdown matrix, so ratios between schemes are paired comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verde.coding.cyclic import CyclicRepetitionCode
from verde.coding.fractional import FractionalRepetitionCode
from verde.coding.sequential import Multiplexed, SelectiveRepetition


@dataclass(frozen=True)
class SchemeTiming:
    name: str
    mean_step_time: float
    mean_load: float
    exact: bool


def wait_for_all(slowdowns: np.ndarray) -> SchemeTiming:
    n = slowdowns.shape[1]
    return SchemeTiming("wait-for-all", float((slowdowns / n).max(axis=1).mean()), 1 / n, True)


def ignore_stragglers(slowdowns: np.ndarray, s: int) -> SchemeTiming:
    n = slowdowns.shape[1]
    kth = np.sort(slowdowns / n, axis=1)[:, n - s - 1]
    return SchemeTiming("ignore-stragglers", float(kth.mean()), 1 / n, False)


def fractional(slowdowns: np.ndarray, s: int) -> SchemeTiming:
    n = slowdowns.shape[1]
    code = FractionalRepetitionCode(n, s)
    finish = slowdowns * ((s + 1) / n)
    per_group = np.stack([finish[:, list(code.members(g))].min(axis=1)
                          for g in range(code.n_groups)], axis=1)
    return SchemeTiming("fractional", float(per_group.max(axis=1).mean()), (s + 1) / n, True)


def cyclic(slowdowns: np.ndarray, s: int) -> SchemeTiming:
    n = slowdowns.shape[1]
    CyclicRepetitionCode(n, s)  # validates (n, s)
    kth = np.sort(slowdowns * ((s + 1) / n), axis=1)[:, n - s - 1]
    return SchemeTiming("cyclic", float(kth.mean()), (s + 1) / n, True)


def sequential(slowdowns: np.ndarray, scheme: SelectiveRepetition | Multiplexed) -> SchemeTiming:
    run = scheme.run(slowdowns)
    return SchemeTiming(scheme.name, float(run.round_times.mean()), run.mean_load, True)


def compare(slowdowns: np.ndarray, s: int, *, replication: int = 2, delay: int = 2
            ) -> dict[str, SchemeTiming]:
    """Every scheme on the same delays; sequential schemes use FR of ``replication``."""
    n = slowdowns.shape[1]
    out = [wait_for_all(slowdowns), ignore_stragglers(slowdowns, s), fractional(slowdowns, s),
           cyclic(slowdowns, s),
           sequential(slowdowns, SelectiveRepetition(n, replication, s, delay)),
           sequential(slowdowns, Multiplexed(n, replication, s, delay))]
    return {t.name: t for t in out}
