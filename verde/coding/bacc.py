"""BACC: coded evaluation of any function, tolerating any number of stragglers approximately.

Jahani-Nezhad and Maddah-Ali, "Berrut Approximated Coded Computing: Straggler Resistance Beyond
Polynomial Computing". The master holds ``K`` inputs ``X_0..X_(K-1)`` (same-shaped arrays) and
wants ``f(X_j)`` for a function ``f`` that need not be a polynomial (a neural network layer, a
whole model on a batch). It

1. encodes with Berrut's interpolant through ``(alpha_j, X_j)``, ``alpha_j`` the Chebyshev
   points of the first kind: ``u(z) = sum_j b_j(z) X_j``;
2. sends worker ``i`` the share ``u(z_i)`` (Chebyshev points of the second kind by default, as
   in BACC; SBACC uses the first kind, see :mod:`verde.coding.sbacc`);
3. from the answers ``f(u(z_i))`` of *any* set of workers, interpolates again with Berrut's
   interpolant through the answered ``z_i`` and reads the estimates of ``f(X_j)`` at
   ``alpha_j`` (where ``u(alpha_j) = X_j`` exactly).

The result is approximate: its error is the interpolation error of ``h = f o u`` on the nodes
that answered, bounded rigorously by :meth:`BACC.error_bound` (see
:func:`verde.coding.berrut.berrut_error_bound` for the derivation, made here — the paper's own
theorem is not reproduced). A worker's share is a pure function of its inputs
(:meth:`BACC.encode`), so it can become a provider job unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from verde.coding._checks import check_int, check_number
from verde.coding.arrays import Array, check_same_kind, combine, to_numpy64
from verde.coding.berrut import (
    berrut_error_bound,
    berrut_matrix,
    chebyshev_first_kind,
    chebyshev_second_kind,
    worst_case_berrut_bound,
)
from verde.coding.errors import TooManyStragglers

EvaluationKind = Literal["first", "second"]


@dataclass(frozen=True)
class BACC:
    """Berrut approximated coded computing over ``n_workers`` workers and ``n_inputs`` inputs."""

    n_workers: int
    n_inputs: int
    evaluation: EvaluationKind = "second"
    data_points: np.ndarray = field(init=False, repr=False, compare=False)
    evaluation_points: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_int("n_workers", self.n_workers, 1)
        check_int("n_inputs", self.n_inputs, 1)
        if self.evaluation not in ("first", "second"):
            raise ValueError(f"evaluation must be 'first' or 'second' (Chebyshev kind), got "
                             f"{self.evaluation!r}")
        if self.evaluation == "second" and self.n_workers < 2:
            raise ValueError("Chebyshev points of the second kind need n_workers >= 2")
        points = (chebyshev_first_kind(self.n_workers) if self.evaluation == "first"
                  else chebyshev_second_kind(self.n_workers))
        object.__setattr__(self, "data_points", chebyshev_first_kind(self.n_inputs))
        object.__setattr__(self, "evaluation_points", points)

    def encoding_matrix(self) -> np.ndarray:
        """``(n_workers, n_inputs)``: share ``i`` is ``sum_j E[i, j] X_j``."""
        return berrut_matrix(self.data_points, self.evaluation_points)

    def encode(self, inputs: Sequence[Array]) -> list[Array]:
        """The ``n_workers`` shares ``u(z_i)`` (same type, shape and dtype as the inputs)."""
        self._check_inputs(inputs)
        return combine(self.encoding_matrix(), list(inputs))

    def share(self, inputs: Sequence[Array], worker: int) -> Array:
        """Worker ``worker``'s share alone: a pure function of the inputs and the index."""
        self._check_worker(worker)
        self._check_inputs(inputs)
        return combine(self.encoding_matrix()[[worker]], list(inputs))[0]

    def can_decode(self, answered: Sequence[int]) -> bool:
        """Any non-empty set of distinct workers decodes (with an accuracy that depends on it)."""
        return len(self.answering_set(answered, check=False)) >= 1

    def decoding_matrix(self, answered: Sequence[int]) -> np.ndarray:
        """``(n_inputs, len(answered))`` weights on the answers, in sorted worker order."""
        workers = self.answering_set(answered)
        return berrut_matrix(self.evaluation_points[list(workers)], self.data_points)

    def decode(self, answers: Mapping[int, Array]) -> list[Array]:
        """Estimates of ``f(X_0) .. f(X_(K-1))`` from the answers of any set of workers."""
        workers = self.answering_set(list(answers))
        values = [answers[w] for w in workers]
        check_same_kind("answers", values)
        return combine(self.decoding_matrix(workers), values)

    def error_bound(self, answered: Sequence[int], *, m1: float, m2: float) -> np.ndarray:
        """Per-input bound on ``|estimate - f(X_j)|`` for this answering set (rigorous, given
        ``|h'| <= m1`` and ``|h''| <= m2`` on [-1, 1] for each output coordinate of
        ``h = f o u``; see :func:`composed_derivative_bounds`)."""
        workers = self.answering_set(answered)
        return berrut_error_bound(self.evaluation_points[list(workers)], self.data_points,
                                  m1=m1, m2=m2)

    def worst_case_error_bound(self, stragglers: int, *, m1: float, m2: float) -> float:
        """The bound a user can promise before the run: worst over every straggler set."""
        return worst_case_berrut_bound(self.evaluation_points, self.data_points, stragglers,
                                       m1=m1, m2=m2)

    def encoder_derivative_norms(self, inputs: Sequence[Array], *, grid: int = 4001
                                 ) -> tuple[float, float]:
        """``(max ||u'(z)||_2, max ||u''(z)||_2)`` over [-1, 1], estimated on a grid.

        An estimate, not a bound: the maxima are taken over ``grid`` points (central
        differences of step 1e-4). ``u`` is a smooth rational function without real poles, so a
        fine grid is close; scale up by a margin when the result must be safe.
        """
        self._check_inputs(inputs)
        check_int("grid", grid, 3)
        flat = np.stack([to_numpy64(x).reshape(-1) for x in inputs])
        gram = flat @ flat.T
        step = 1e-4
        z = np.linspace(-1 + step, 1 - step, grid)
        w_mid = berrut_matrix(self.data_points, z)
        w_up = berrut_matrix(self.data_points, z + step)
        w_down = berrut_matrix(self.data_points, z - step)
        d1 = (w_up - w_down) / (2 * step)
        d2 = (w_up - 2 * w_mid + w_down) / step**2
        norm1 = np.sqrt(np.maximum(np.einsum("gi,ij,gj->g", d1, gram, d1), 0.0))
        norm2 = np.sqrt(np.maximum(np.einsum("gi,ij,gj->g", d2, gram, d2), 0.0))
        return float(norm1.max()), float(norm2.max())

    def answering_set(self, answered: Sequence[int], *, check: bool = True) -> tuple[int, ...]:
        """The answering workers, validated (ints in range, distinct) and sorted; with
        ``check``, TooManyStragglers when there is none."""
        workers = tuple(sorted(set(answered)))
        for w in workers:
            self._check_worker(w)
        if len(workers) != len(list(answered)):
            raise ValueError(f"answered workers must be distinct, got {list(answered)}")
        if check and not workers:
            raise TooManyStragglers("BACC", workers, "needs at least one answer")
        return workers

    def _check_worker(self, worker: int) -> None:
        check_int("worker", worker, 0, self.n_workers)

    def _check_inputs(self, inputs: Sequence[Array]) -> None:
        if len(inputs) != self.n_inputs:
            raise ValueError(f"expected {self.n_inputs} inputs, got {len(inputs)}")
        check_same_kind("inputs", list(inputs))


def composed_derivative_bounds(u1: float, u2: float, *, gradient_bound: float,
                               hessian_bound: float) -> tuple[float, float]:
    """``(m1, m2)`` for ``h = f o u`` from the encoder's derivative norms and ``f``'s smoothness.

    ``gradient_bound`` bounds ``||grad f_k||_2`` and ``hessian_bound`` bounds the spectral norm of
    ``f_k``'s Hessian, for every output coordinate ``k``, on the range of the encoder. Chain
    rule: ``|h_k'| <= G ||u'||`` and ``|h_k''| <= H ||u'||^2 + G ||u''||``.
    """
    for name, value in (("u1", u1), ("u2", u2), ("gradient_bound", gradient_bound),
                        ("hessian_bound", hessian_bound)):
        check_number(name, value)
    return gradient_bound * u1, hessian_bound * u1**2 + gradient_bound * u2
