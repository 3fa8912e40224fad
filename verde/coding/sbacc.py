"""SBACC: BACC that also locates and removes workers returning wrong results.

Borah and Harshan, "On Securing Berrut Approximated Coded Computing Through Discrete Cosine
Transforms". The encoder is BACC's (Berrut through Chebyshev points of the first kind), but the
workers' evaluation points are Chebyshev points of the *first* kind too,
``z_i = cos((2i+1) pi / (2N))``. Then the answers ``f(u(z_i))`` of a smooth ``f o u`` are close
to a codeword of a DCT code (:mod:`verde.coding.dct_code`): their high DCT frequencies are
syndromes, which locate wrong answers. With redundancy ``r`` (high frequencies used as
syndromes) and ``s`` stragglers, up to ``(r - s) // 2`` wrong workers are located and dropped;
more are refused with :class:`~verde.coding.errors.TooManyFaults`, and so is a pattern that the
approximation noise leaves ambiguous (two different worker sets fit). Deviations below what the
tolerance can see (:attr:`SBACCReport.undetectable_below`) pass unnoticed, and with few spare
answers a wrong set can occasionally be mistaken for a smaller one — the bench counts how
often. The estimate is then BACC's Berrut decode from the workers that remain.

The trade-off the paper studies, as callable bounds (:func:`sbacc_tradeoff`, my formulation): a
larger ``r`` corrects more workers, but (i) the code's dimension ``N - r`` is smaller, so the
honest answers sit farther from the code (:func:`~verde.coding.dct_code.dct_tail_bound`: the
tolerance must be larger, and smaller deviations go unnoticed), and (ii) the decode uses fewer
nodes in the worst case (``s`` + located workers missing), so the Berrut bound grows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from verde.coding._checks import check_int, check_number
from verde.coding.arrays import Array, check_same_kind, to_numpy64
from verde.coding.bacc import BACC
from verde.coding.berrut import lebesgue_function, worst_case_berrut_bound
from verde.coding.dct_code import DCTCode, dct_tail_bound
from verde.coding.errors import TooManyFaults


@dataclass(frozen=True)
class SBACCReport:
    """Who answered, who straggled, whom the code located as wrong, and by how much.

    ``undetectable_below``: a wrong answer on one kept worker that deviates by less than this
    (per output coordinate) may have gone unnoticed (:meth:`DCTCode.sensitivity`); it grows when
    few spare answers remain or kept workers sit at the ends of [-1, 1].
    """

    answered: tuple[int, ...]
    stragglers: tuple[int, ...]
    faulty: tuple[int, ...]
    kept: tuple[int, ...]
    misfit: float
    tolerance: float
    deviation: dict[int, float]
    undetectable_below: float

    def noise_gain(self, evaluation_points: np.ndarray, data_points: np.ndarray) -> float:
        """Largest Lebesgue function of the kept nodes at the data points: an undetected error
        of size ``delta`` on every kept answer moves an estimate by at most ``gain * delta``."""
        return float(lebesgue_function(evaluation_points[list(self.kept)], data_points).max())


@dataclass(frozen=True)
class SBACC:
    """Secure BACC over ``n_workers`` workers, ``n_inputs`` inputs and DCT ``redundancy``.

    ``tolerance``: the largest least-squares misfit (per output coordinate, the 2-norm over
    workers, :meth:`~verde.coding.dct_code.DCTCode.misfit`) an honest answer set has to the DCT
    code — a misfit on all workers bounds it on every subset. Bound it with
    :func:`~verde.coding.dct_code.dct_tail_bound`, or measure it on a trusted run
    (:meth:`honest_misfit`) and add a margin.
    """

    n_workers: int
    n_inputs: int
    redundancy: int
    tolerance: float
    bacc: BACC = field(init=False, repr=False, compare=False)
    code: DCTCode = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bacc = BACC(self.n_workers, self.n_inputs, "first")
        check_int("redundancy", self.redundancy, 0, self.n_workers)
        check_number("tolerance", self.tolerance)
        object.__setattr__(self, "bacc", bacc)
        object.__setattr__(self, "code", DCTCode(self.n_workers,
                                                 self.n_workers - self.redundancy))

    @property
    def evaluation_points(self) -> np.ndarray:
        return self.bacc.evaluation_points

    @property
    def data_points(self) -> np.ndarray:
        return self.bacc.data_points

    def correctable(self, stragglers: int) -> int:
        """Wrong workers located and dropped next to ``stragglers`` missing ones."""
        return self.code.correctable(stragglers)

    def encode(self, inputs: Sequence[Array]) -> list[Array]:
        return self.bacc.encode(inputs)

    def share(self, inputs: Sequence[Array], worker: int) -> Array:
        return self.bacc.share(inputs, worker)

    def honest_misfit(self, answers: Mapping[int, Array]) -> float:
        """The misfit of answers known to be honest (a trusted calibration run)."""
        return self.code.misfit(self._matrix(answers), sorted(answers))

    def decode(self, answers: Mapping[int, Array]) -> list[Array]:
        return self.decode_with_report(answers)[0]

    def decode_with_report(self, answers: Mapping[int, Array]
                           ) -> tuple[list[Array], SBACCReport]:
        """Locate and drop wrong answers, then Berrut-decode from the rest.

        Raises :class:`TooManyFaults` when no set of at most ``correctable(stragglers)`` workers
        explains the answers within the tolerance.
        """
        answered = self.bacc.answering_set(list(answers))
        check_same_kind("answers", [answers[w] for w in answered])
        stragglers = tuple(w for w in range(self.n_workers) if w not in answers)
        values = self._matrix(answers)
        try:
            found = self.code.decode(values, stragglers, tolerance=float(self.tolerance))
        except TooManyFaults as exc:
            raise TooManyFaults("SBACC", (), f"{exc.why} (at most "
                                f"{self.correctable(len(stragglers))} wrong workers are "
                                f"correctable next to {len(stragglers)} stragglers)") from exc
        predicted = self.code.predict(values, found.kept, found.located)
        deviation = {int(w): float(np.abs(values[w] - p).max())
                     for w, p in zip(found.located, predicted, strict=True)}
        estimates = self.bacc.decode({w: answers[w] for w in found.kept})
        weakest = float(self.code.sensitivity(found.kept).min())
        undetectable = 2 * found.tolerance / weakest if weakest > 0 else math.inf
        report = SBACCReport(answered, stragglers, found.located, found.kept, found.residual,
                             found.tolerance, deviation, undetectable)
        return estimates, report

    def _matrix(self, answers: Mapping[int, Array]) -> np.ndarray:
        if not answers:
            raise ValueError("answers must not be empty")
        first = to_numpy64(answers[min(answers)]).reshape(-1)
        values = np.zeros((self.n_workers, first.size))
        for w, a in answers.items():
            values[w] = to_numpy64(a).reshape(-1)
        return values


@dataclass(frozen=True)
class TradeoffPoint:
    """One choice of redundancy: what it corrects and what it costs in accuracy."""

    redundancy: int
    correctable: int
    honest_misfit_bound: float
    accuracy_bound_without_faults: float
    accuracy_bound_with_faults: float


def sbacc_tradeoff(n_workers: int, n_inputs: int, stragglers: int, *, m1: float, m2: float,
                   rho: float, bound: float, redundancies: Sequence[int] | None = None,
                   max_patterns: int = 2_000_000) -> list[TradeoffPoint]:
    """Correction capability vs accuracy for each redundancy ``r`` (default: ``s..N-1``).

    ``m1``, ``m2`` bound ``|h'|``, ``|h''|`` and ``(rho, bound)`` the analyticity of every
    output coordinate ``h`` of ``f o u`` (see :func:`~verde.coding.bacc.composed_derivative_bounds`
    and :func:`~verde.coding.dct_code.dct_tail_bound`). For each ``r``: ``correctable = (r-s)//2``
    wrong workers; ``honest_misfit_bound`` — the tolerance an honest run stays within (smaller is
    better: deviations below it are not located); worst-case Berrut bounds over every pattern of
    ``s`` missing workers (no faults) and of ``s`` to ``s + correctable`` (faults dropped; the
    bound is not monotone in the node count, since an odd count pays the ``m1`` term).
    """
    code_check = BACC(n_workers, n_inputs, "first")
    check_int("stragglers", stragglers, 0, n_workers)
    chosen = list(range(stragglers, n_workers)) if redundancies is None else list(redundancies)
    for r in chosen:
        check_int("each redundancy", r, stragglers, n_workers)
    worst: dict[int, float] = {}

    def worst_missing(missing: int) -> float:
        if missing not in worst:
            worst[missing] = worst_case_berrut_bound(
                code_check.evaluation_points, code_check.data_points, missing, m1=m1, m2=m2,
                max_patterns=max_patterns)
        return worst[missing]

    points = []
    for r in chosen:
        t = (r - stragglers) // 2
        points.append(TradeoffPoint(
            r, t, dct_tail_bound(n_workers, n_workers - r, rho=rho, bound=bound),
            worst_missing(stragglers),
            max(worst_missing(stragglers + k) for k in range(t + 1))))
    return points
