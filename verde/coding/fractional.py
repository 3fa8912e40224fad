"""Fractional repetition gradient coding (Tandon et al., ICML 2017, section 3.1).

``n`` workers form ``n / (s+1)`` groups of ``s+1`` replicas. The step's data is cut into one
partition per group; every replica of group ``j`` computes the gradient of partition ``j``.
Any ``s`` stragglers leave at least one replica of every group, so decoding takes one answer
per group and adds the group gradients in increasing group order.

Why this is the code verde prefers: decoding never multiplies by real coefficients, so with
repops (bit-identical gradients on every machine) the decoded gradient has the *same bits*
whichever replicas answered, and equals an uncoded run that computes the same partitions and
adds them in the same order. Replicas must then agree bit for bit, which turns redundancy into
fault detection (see :mod:`verde.coding.byzantine`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from verde.coding.base import Vector, check_code_shape, ordered_sum
from verde.coding.errors import TooManyStragglers


@dataclass(frozen=True)
class FractionalRepetitionCode:
    """Fractional repetition code for ``n_workers`` workers tolerating ``stragglers`` (s)."""

    n_workers: int
    stragglers: int

    def __post_init__(self) -> None:
        check_code_shape(self.n_workers, self.stragglers)
        if self.n_workers % (self.stragglers + 1):
            raise ValueError(
                f"fractional repetition needs (s+1) | n: s+1={self.stragglers + 1} does not "
                f"divide n={self.n_workers} (use cyclic repetition, or change n or s)"
            )

    @property
    def replication(self) -> int:
        """Replicas per group (s+1)."""
        return self.stragglers + 1

    @property
    def n_groups(self) -> int:
        return self.n_workers // self.replication

    @property
    def n_partitions(self) -> int:
        """One data partition per group."""
        return self.n_groups

    def group_of(self, worker: int) -> int:
        self._check_worker(worker)
        return worker // self.replication

    def members(self, group: int) -> tuple[int, ...]:
        if not 0 <= group < self.n_groups:
            raise ValueError(f"group must be in [0, {self.n_groups}), got {group}")
        r = self.replication
        return tuple(range(group * r, (group + 1) * r))

    def partitions_of(self, worker: int) -> tuple[int, ...]:
        return (self.group_of(worker),)

    def encode(self, worker: int, partition_gradients: Mapping[int, Vector]) -> Vector:
        part = self.group_of(worker)
        if part not in partition_gradients:
            raise ValueError(f"worker {worker} needs the gradient of partition {part}")
        return partition_gradients[part]

    def can_decode(self, answered: Sequence[int]) -> bool:
        groups = {self.group_of(w) for w in answered}
        return len(groups) == self.n_groups

    def chosen_replicas(self, answered: Sequence[int]) -> tuple[int, ...]:
        """The answer decoding uses for each group: its lowest-numbered answering replica."""
        pick: dict[int, int] = {}
        for w in sorted(set(answered)):
            pick.setdefault(self.group_of(w), w)
        missing = [g for g in range(self.n_groups) if g not in pick]
        if missing:
            raise TooManyStragglers(
                "fractional repetition", answered, f"no replica of groups {missing} answered"
            )
        return tuple(pick[g] for g in range(self.n_groups))

    def decode(self, answers: Mapping[int, Vector]) -> Vector:
        replicas = self.chosen_replicas(list(answers))
        return ordered_sum([answers[w] for w in replicas])

    def _check_worker(self, worker: int) -> None:
        if not isinstance(worker, int) or not 0 <= worker < self.n_workers:
            raise ValueError(f"worker must be an int in [0, {self.n_workers}), got {worker!r}")
