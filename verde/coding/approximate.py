"""Ignore-stragglers baseline: no redundancy, unbiased reweighting of whoever answered.

Each worker computes one partition (load 1/n); the master waits for the first ``n - s``
answers and returns ``(n / |F|) * sum_{i in F} g_i``. If stragglers are independent of the
data this is an unbiased estimate of the full gradient, but it is *not* the full gradient —
it is the comparison point that shows what exact codes buy (Tandon et al. 2017, section 6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from verde.coding.base import Vector, check_code_shape, ordered_sum
from verde.coding.errors import TooManyStragglers


@dataclass(frozen=True)
class IgnoreStragglers:
    """Uncoded partitions; decode from any ``n - s`` answers by reweighting (approximate)."""

    n_workers: int
    stragglers: int

    def __post_init__(self) -> None:
        check_code_shape(self.n_workers, self.stragglers)

    @property
    def n_partitions(self) -> int:
        return self.n_workers

    def partitions_of(self, worker: int) -> tuple[int, ...]:
        if not 0 <= worker < self.n_workers:
            raise ValueError(f"worker must be in [0, {self.n_workers}), got {worker}")
        return (worker,)

    def encode(self, worker: int, partition_gradients: Mapping[int, Vector]) -> Vector:
        return partition_gradients[self.partitions_of(worker)[0]]

    def can_decode(self, answered: Sequence[int]) -> bool:
        return len(set(answered)) >= self.n_workers - self.stragglers

    def decode(self, answers: Mapping[int, Vector]) -> Vector:
        workers = sorted(answers)
        if not self.can_decode(workers):
            raise TooManyStragglers(
                "ignore-stragglers", workers,
                f"waits for n-s={self.n_workers - self.stragglers} answers",
            )
        total = ordered_sum([answers[w] for w in workers])
        if len(workers) == self.n_workers:
            return total
        return total * (self.n_workers / len(workers))
