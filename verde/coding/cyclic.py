"""Cyclic repetition gradient coding (Tandon et al., ICML 2017, section 3.2, Algorithm 2).

Worker ``i`` holds partitions ``i, i+1, ..., i+s (mod n)`` and sends ``sum_j B[i, j] g_j``.
``B`` is built from a random ``s x n`` matrix ``H`` with ``H 1 = 0``: every row of ``B`` lies
in ``null(H)``, an ``(n-s)``-dimensional space that contains the all-ones vector, so any
``n - s`` rows span it (with probability one) and ``a^T B_F = 1^T`` has a solution.

Real coefficients are the price: decoding solves a linear system whose condition number grows
with n (REFERENCES.md: up to ~1e9 at n=200, s=40). Every decode therefore reports the
condition number and the residual of its system, and patterns beyond ``max_condition`` are
refused with :class:`~verde.coding.errors.NumericallyUnsafe` rather than silently returning a
wrong gradient. Decoding is *not* bit-exact across straggler patterns; use fractional repetition
where bits matter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from verde.coding.arrays import narrow, widen
from verde.coding.base import Vector, check_code_shape
from verde.coding.errors import NumericallyUnsafe, TooManyStragglers


@dataclass(frozen=True)
class DecodeReport:
    """What one cyclic decode cost in accuracy: condition number and system residual."""

    workers: tuple[int, ...]
    coefficients: tuple[float, ...]
    condition: float
    residual: float

    def error_bound(self, unit_roundoff: float) -> float:
        """Relative error bound of the decoded sum: ``cond * (residual + n * u)`` (first order)."""
        return self.condition * (self.residual + len(self.workers) * unit_roundoff)


@dataclass(frozen=True)
class CyclicRepetitionCode:
    """Cyclic repetition code; ``seed`` fixes the random construction of ``B``."""

    n_workers: int
    stragglers: int
    seed: int = 0
    max_condition: float = 1e4
    encoding: np.ndarray = field(init=False, repr=False, compare=False)
    _solved: dict[tuple[int, ...], DecodeReport] = field(
        init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        check_code_shape(self.n_workers, self.stragglers)
        if not self.max_condition > 1:
            raise ValueError(f"max_condition must be > 1, got {self.max_condition!r}")
        object.__setattr__(self, "encoding", _build_encoding(self.n_workers, self.stragglers,
                                                             self.seed))

    @property
    def n_partitions(self) -> int:
        return self.n_workers

    def partitions_of(self, worker: int) -> tuple[int, ...]:
        self._check_worker(worker)
        n = self.n_workers
        return tuple((worker + j) % n for j in range(self.stragglers + 1))

    def coefficients_of(self, worker: int) -> tuple[float, ...]:
        """``B[worker, p]`` for each of the worker's partitions, in :meth:`partitions_of` order."""
        return tuple(float(self.encoding[worker, p]) for p in self.partitions_of(worker))

    def encode(self, worker: int, partition_gradients: Mapping[int, Vector]) -> Vector:
        parts = self.partitions_of(worker)
        missing = [p for p in parts if p not in partition_gradients]
        if missing:
            raise ValueError(f"worker {worker} needs the gradients of partitions {missing}")
        total = None
        for p, c in zip(parts, self.coefficients_of(worker), strict=True):
            term = partition_gradients[p] * c
            total = term if total is None else total + term
        return total

    def can_decode(self, answered: Sequence[int]) -> bool:
        return len(set(answered)) >= self.n_workers - self.stragglers

    def decode_coefficients(self, answered: Sequence[int]) -> DecodeReport:
        """Solve ``a^T B_F = 1^T`` for the answering set F, with its condition number.

        Solutions are cached per answering set: straggler patterns recur, and the SVD is the
        only part of decoding that is not linear in the gradient size.
        """
        workers = tuple(sorted(set(answered)))
        if workers in self._solved:
            return self._solved[workers]
        for w in workers:
            self._check_worker(w)
        if not self.can_decode(workers):
            raise TooManyStragglers(
                "cyclic repetition", workers,
                f"needs at least n-s={self.n_workers - self.stragglers} answers",
            )
        b_f = self.encoding[list(workers), :]
        sing = np.linalg.svd(b_f, compute_uv=False)
        rank = self.n_workers - self.stragglers
        condition = float(sing[0] / sing[rank - 1]) if sing[rank - 1] > 0 else float("inf")
        if not condition <= self.max_condition:
            raise NumericallyUnsafe(workers, condition, self.max_condition)
        coeffs, *_ = np.linalg.lstsq(b_f.T, np.ones(self.n_workers), rcond=None)
        residual = float(np.linalg.norm(b_f.T @ coeffs - 1.0) / np.sqrt(self.n_workers))
        report = DecodeReport(workers, tuple(float(c) for c in coeffs), condition, residual)
        self._solved[workers] = report
        return report

    def decode(self, answers: Mapping[int, Vector]) -> Vector:
        return self.decode_with_report(answers)[0]

    def decode_with_report(self, answers: Mapping[int, Vector]) -> tuple[Vector, DecodeReport]:
        """Decoded gradient (combined in float64, returned in the answers' dtype) and its report."""
        report = self.decode_coefficients(list(answers))
        first = answers[report.workers[0]]
        total = None
        for w, c in zip(report.workers, report.coefficients, strict=True):
            term = widen(answers[w]) * c
            total = term if total is None else total + term
        return narrow(total, first), report

    def _check_worker(self, worker: int) -> None:
        if not isinstance(worker, int | np.integer) or not 0 <= worker < self.n_workers:
            raise ValueError(f"worker must be an int in [0, {self.n_workers}), got {worker!r}")


def _build_encoding(n: int, s: int, seed: int) -> np.ndarray:
    """Tandon et al. Algorithm 2: rows of B in null(H) with the cyclic support pattern."""
    b = np.zeros((n, n))
    if s == 0:
        np.fill_diagonal(b, 1.0)
        return b
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((s, n))
    h[:, n - 1] = -h[:, : n - 1].sum(axis=1)  # H 1 = 0
    for i in range(n):
        support = [(i + j) % n for j in range(1, s + 1)]
        b[i, i] = 1.0
        b[i, support] = np.linalg.solve(h[:, support], -h[:, i])
    return b

