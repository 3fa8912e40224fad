"""What every gradient code shares: who holds which partitions, and a fixed-order sum.

Gradient coding (Tandon, Lei, Dimakis, Karampatziakis, "Gradient Coding", ICML 2017): the data
of one step is cut into ``k`` partitions; worker ``i`` computes a linear combination
``sum_j B[i, j] * g_j`` of the gradients of the partitions it holds; the master recovers
``sum_j g_j`` from any ``n - s`` answers. The codes here differ in ``B`` and in how decoding
combines answers; they share the vocabulary below.

Gradients are flat vectors: numpy arrays or torch tensors (any float dtype, any device). Sums
are taken with the ``+`` of the array type in a fixed, documented order so that, for
repetition codes, the decoded bits do not depend on which workers happened to answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

Vector = Any  # numpy.ndarray or torch.Tensor (flat)


def ordered_sum(vectors: Sequence[Vector]) -> Vector:
    """``((v0 + v1) + v2) + ...`` left to right: the one summation order the codes promise.

    Each element of the result is the same sequence of IEEE additions on every machine, so
    equal inputs in equal order give equal bits (no BLAS, no pairwise tree chosen by a library).
    """
    if not vectors:
        raise ValueError("ordered_sum needs at least one vector")
    total = _copy(vectors[0])
    for v in vectors[1:]:
        total = total + v
    return total


def _copy(v: Vector) -> Vector:
    """A copy that shares no memory with the caller's vector (inputs are never mutated)."""
    return v.clone() if hasattr(v, "clone") else v.copy()


@runtime_checkable
class GradientCode(Protocol):
    """A straggler-tolerant gradient code over ``n_workers`` workers and ``n_partitions`` parts."""

    n_workers: int
    n_partitions: int
    stragglers: int

    def partitions_of(self, worker: int) -> tuple[int, ...]:
        """Partitions worker ``worker`` must compute gradients for (its load)."""
        ...

    def encode(self, worker: int, partition_gradients: Mapping[int, Vector]) -> Vector:
        """The message worker ``worker`` sends, from the gradients of its own partitions."""
        ...

    def can_decode(self, answered: Sequence[int]) -> bool:
        """Whether these answering workers determine the full gradient."""
        ...

    def decode(self, answers: Mapping[int, Vector]) -> Vector:
        """The sum of all partition gradients from the answers of a decodable worker set."""
        ...


def check_code_shape(n_workers: int, stragglers: int) -> None:
    """Validate (n, s) for the repetition codes: 0 <= s < n."""
    if not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive int, got {n_workers!r}")
    if not isinstance(stragglers, int) or not 0 <= stragglers < n_workers:
        raise ValueError(
            f"stragglers must be an int with 0 <= s < n_workers={n_workers}, got {stragglers!r}"
        )


def worker_load(code: GradientCode) -> float:
    """Fraction of the data each worker computes on (Tandon et al.: (s+1)/n for both codes)."""
    return max(len(code.partitions_of(w)) for w in range(code.n_workers)) / code.n_partitions
