"""DCT codes over the reals: detect, locate and correct wrong worker answers (SBACC's tool).

Borah and Harshan ("On Securing Berrut Approximated Coded Computing Through Discrete Cosine
Transforms") observe that when the worker evaluation points are the Chebyshev points of the
first kind, ``z_i = cos((2i+1) pi / (2n))``, the vector of answers of a function that is close
to a polynomial of degree < ``k`` is close to a codeword of a *DCT code*: its DCT-II
coefficients ``S_m = sum_i v_i T_m(z_i) = sum_i v_i cos(m (2i+1) pi / (2n))`` vanish (nearly)
for ``m >= k``. Those high frequencies are syndromes, exactly as for a real-number BCH code.

The decoder here is my own construction along the classical lines (the paper's decoder was
not available to me):

* Erasures (stragglers) are zeroed and known; their locator ``Gamma(z) = prod (z - z_e)``.
* Errors at unknown workers have a locator ``Lambda(z)`` of degree ``t``; in the Chebyshev
  basis the key identity ``T_a T_b = (T_(a+b) + T_|a-b|) / 2`` turns
  ``sum_i e_i Gamma(z_i) Lambda(z_i) T_m(z_i) = 0`` into linear equations in the coefficients
  of ``Lambda`` whose coefficients are syndromes (a Chebyshev analogue of Peterson/Prony).
  At the first-kind points ``T_n(z_i) = 0`` and ``T_(n+j) = -T_(n-j)``, so syndromes are known
  for ``m`` in ``[k, 2n-k]`` and there are ``n - k - s - t`` independent equations: ``t`` errors
  are located when ``2t + s <= n - k`` — the usual ``(redundancy - erasures) / 2``.
* All output coordinates share the locator, so the equations of every coordinate are stacked
  (least squares: approximation noise averages out), ``Lambda``'s roots are mapped to the
  nearest workers, and the result is *verified*: the answers left after dropping erasures and
  located workers must fit a polynomial of degree < k within ``tolerance``. When the sets of
  ``t`` workers are few enough, every set is also scored (my robustness step: noise can blur
  the locator's roots near the ends of [-1, 1]); two different sets that both fit are an
  ambiguity and are refused. The smallest ``t`` with a fit wins; none raises
  :class:`~verde.coding.errors.TooManyFaults`.

Guarantees (exact arithmetic, errors well above the tolerance): up to ``(r - s) // 2`` wrong
answers are located and removed (``r = n - k`` the redundancy, ``s`` the erasures); more wrong
answers are refused — a crafted set of wrong answers can only be mistaken for another pattern
when it has at least ``r - s + 1 - (r - s) // 2`` members. Errors below the tolerance are not
distinguishable from approximation error; :func:`dct_tail_bound` gives the tolerance an honest
worker stays within.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import chebyshev

from verde.coding._checks import check_int, check_number
from verde.coding.berrut import chebyshev_first_kind
from verde.coding.errors import TooManyFaults


@dataclass(frozen=True)
class DCTDecoding:
    """Which workers the code located as wrong, and how well the rest fit the code."""

    located: tuple[int, ...]
    kept: tuple[int, ...]
    residual: float
    tolerance: float


@dataclass(frozen=True)
class DCTCode:
    """The length-``length`` DCT code of dimension ``dimension`` on first-kind Chebyshev points."""

    length: int
    dimension: int
    nodes: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_int("length", self.length, 1)
        check_int("dimension", self.dimension, 1)
        if self.dimension > self.length:
            raise ValueError(f"dimension {self.dimension} exceeds length {self.length}")
        object.__setattr__(self, "nodes", chebyshev_first_kind(self.length))

    @property
    def redundancy(self) -> int:
        return self.length - self.dimension

    def correctable(self, erasures: int) -> int:
        """Wrong answers that can be located next to ``erasures`` missing ones."""
        return max(0, (self.redundancy - erasures) // 2)

    def detectable(self, erasures: int) -> int:
        """Wrong answers that are always noticed next to ``erasures`` missing ones."""
        return max(0, self.redundancy - erasures)

    def residual(self, values: np.ndarray, kept: Sequence[int]) -> np.ndarray:
        """Least-squares misfit of ``values[kept]`` to a polynomial of degree < dimension."""
        v = self._values(values)
        rows = list(kept)
        q, _ = np.linalg.qr(_chebyshev_basis(self.nodes[rows], self.dimension))
        return v[rows] - q @ (q.T @ v[rows])

    def predict(self, values: np.ndarray, kept: Sequence[int], at: Sequence[int]) -> np.ndarray:
        """What the least-squares codeword through ``values[kept]`` says at positions ``at``."""
        v = self._values(values)
        rows = list(kept)
        q, r = np.linalg.qr(_chebyshev_basis(self.nodes[rows], self.dimension))
        coeffs = np.linalg.solve(r, q.T @ v[rows])
        return _chebyshev_basis(self.nodes[list(at)], self.dimension) @ coeffs

    def locate(self, values: np.ndarray, erased: Sequence[int], errors: int
               ) -> tuple[int, ...] | None:
        """The ``errors`` workers whose answers the syndromes point at (roots of the error
        locator matched to distinct answering workers), or None if the locator is degenerate or
        its roots are far from [-1, 1]."""
        v = self._values(values)
        gone = sorted(set(erased))
        if errors < 1 or 2 * errors + len(gone) > self.redundancy:
            raise ValueError(f"can locate 1..{self.correctable(len(gone))} errors next to "
                             f"{len(gone)} erasures, asked for {errors}")
        locator = _error_locator(v, self.nodes, self.dimension, gone, errors)
        if locator is None:
            return None
        roots = chebyshev.chebroots(locator)
        if np.any(np.abs(roots.imag) > 0.5) or np.any(np.abs(roots.real) > 1.5):
            return None
        present = np.array([i for i in range(self.length) if i not in gone])
        # Noise can pull two roots of neighbouring workers into a near-real complex pair:
        # match roots to distinct workers greedily, closest pair first.
        distance = np.abs(roots.real[:, None] - self.nodes[present][None, :])
        found: set[int] = set()
        for _ in range(errors):
            r, c = np.unravel_index(np.argmin(distance), distance.shape)
            found.add(int(present[c]))
            distance[r, :] = np.inf
            distance[:, c] = np.inf
        return tuple(sorted(found))

    def misfit(self, values: np.ndarray, kept: Sequence[int]) -> float:
        """The largest, over output coordinates, 2-norm over ``kept`` workers of the residual.

        Monotone in the kept set: dropping workers never increases it, so a tolerance measured
        on all honest answers holds for every subset of them.
        """
        r = self.residual(values, kept)
        return float(np.linalg.norm(r, axis=0).max(initial=0.0))

    def decode(self, values: np.ndarray, erased: Sequence[int], *, tolerance: float,
               max_errors: int | None = None, search_budget: int = 50_000) -> DCTDecoding:
        """Find the fewest wrong answers whose removal leaves a :meth:`misfit` within
        ``tolerance``.

        ``values`` is ``(length, ...)``; rows in ``erased`` are ignored. For each ``t`` the
        algebraic locator proposes ``t`` workers; when its proposal does not fit (noise near
        the edge nodes can blur the locator's roots) and there are at most ``search_budget``
        sets of ``t`` answering workers, every set is scored and the best-fitting one is tried
        too (a robustness step of my own, not the paper's). Two different sets that both fit
        make the answer ambiguous: refused rather than guessed.
        """
        check_number("tolerance", tolerance)
        check_int("search_budget", search_budget, 0)
        gone = self._erased(erased)
        limit = self.correctable(len(gone))
        if max_errors is not None:
            limit = min(limit, check_int("max_errors", max_errors, 0))
        v = self._values(values)
        present = [i for i in range(self.length) if i not in gone]
        if len(present) < self.dimension:
            raise TooManyFaults("DCT code", (), f"only {len(present)} answers for a "
                                f"code of dimension {self.dimension}")
        tried: list[str] = []
        for t in range(limit + 1):
            proposals = [()] if t == 0 else [self.locate(v, gone, t)]
            if t and proposals[0] is None:
                tried.append(f"{t}: locator degenerate")
                proposals = []
            searched = t > 0 and math.comb(len(present), t) <= search_budget
            if searched:
                proposals.extend(self._candidate_sets(v, present, t, tolerance))
            fits = []
            for located in dict.fromkeys(proposals):
                kept = tuple(i for i in present if i not in located)
                misfit = self.misfit(v, kept)
                if misfit <= tolerance:
                    fits.append((misfit, located, kept))
                elif not searched:
                    tried.append(f"{t} (workers {list(located)}): misfit {misfit:.3g}")
            if len(fits) > 1:
                sets = [list(f[1]) for f in sorted(fits)]
                common = set(sets[0]).intersection(*map(set, sets[1:]))
                raise TooManyFaults("DCT code", sorted(common),
                                    f"ambiguous: removing any of the worker sets {sets} fits "
                                    f"within tolerance {tolerance:.3g}")
            if fits:
                misfit, located, kept = fits[0]
                return DCTDecoding(located, kept, misfit, tolerance)
            if searched:
                tried.append(f"{t}: no set of {t} workers fits")
        raise TooManyFaults(
            "DCT code", (),
            f"no set of at most {limit} wrong answers explains the syndromes within tolerance "
            f"{tolerance:.3g} next to {len(gone)} missing; tried " + "; ".join(tried))

    def sensitivity(self, kept: Sequence[int]) -> np.ndarray:
        """``sqrt(1 - leverage)`` of each kept worker: a deviation ``e`` on worker ``i`` alone
        raises the misfit by at least ``sensitivity[i] * |e|`` minus the honest misfit, so it
        is surely noticed once ``|e| > 2 tolerance / sensitivity[i]``."""
        rows = list(kept)
        basis = _chebyshev_basis(self.nodes[rows], self.dimension)
        q, _ = np.linalg.qr(basis)
        leverage = np.minimum((q**2).sum(axis=1), 1.0)
        return np.sqrt(1.0 - leverage)

    def _candidate_sets(self, values: np.ndarray, present: list[int], errors: int,
                        tolerance: float) -> list[tuple[int, ...]]:
        """Every set of ``errors`` answering workers whose removal could fit, the best-fitting
        one always included: scored on the 16 coordinates that fit worst with everyone kept
        (a lower bound on the full misfit).

        Vectorised over sets: with ``N`` an orthonormal basis of the answering workers'
        parity space and ``z = N^T y``, dropping set F leaves ``misfit^2 = |z|^2 - |P_F z|^2``,
        ``P_F`` the projection onto the span of ``N``'s rows at F.
        """
        basis = _chebyshev_basis(self.nodes[present], self.dimension)
        q, _ = np.linalg.qr(basis, mode="complete")
        parity = q[:, self.dimension:]  # (len(present), spare)
        y = values[present]
        z_all = parity.T @ y
        worst = np.argsort(np.linalg.norm(z_all, axis=0))[::-1][:16]
        z = z_all[:, worst]  # (spare, coords)
        sets = np.array(list(itertools.combinations(range(len(present)), errors)))
        cols = parity[sets].transpose(0, 2, 1)  # (sets, spare, errors)
        gram = cols.transpose(0, 2, 1) @ cols
        rhs = cols.transpose(0, 2, 1) @ z[None]
        solved = np.linalg.pinv(gram) @ rhs
        explained = np.einsum("sec,sec->sc", rhs, solved)
        misfit = np.sqrt(np.maximum((z**2).sum(axis=0)[None] - explained, 0.0)).max(axis=1)
        order = np.argsort(misfit, kind="stable")
        chosen = [int(k) for k in order if misfit[k] <= tolerance] or [int(order[0])]
        return [tuple(present[i] for i in sets[k]) for k in chosen]

    def _values(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        if v.ndim < 1 or v.shape[0] != self.length:
            raise ValueError(f"values must have {self.length} rows, got shape {v.shape}")
        return v.reshape(self.length, -1)

    def _erased(self, erased: Sequence[int]) -> list[int]:
        gone = sorted(set(erased))
        for i in gone:
            check_int("erased position", i, 0, self.length)
        return gone


def dct_tail_bound(length: int, dimension: int, *, rho: float, bound: float) -> float:
    """How far an honest answer vector can be from the code: a bound on the misfit of
    :meth:`DCTCode.decode` when nobody cheats.

    Assumes every output coordinate ``h`` (of ``f o u`` for SBACC) is analytic in the Bernstein
    ellipse with parameter ``rho > 1`` (foci -1 and 1, semi-axes summing to ``rho``) with
    ``|h| <= bound`` there. Then its Chebyshev coefficients obey ``|c_m| <= 2 bound rho^-m``
    (Trefethen, *Approximation Theory and Approximation Practice*, Thm 8.1); first-kind samples
    alias ``m`` onto ``2jn +- m`` with signs, so the DCT coefficient at ``m`` is at most
    ``2 bound (rho^-m + (rho^m + rho^-m) rho^-2n / (1 - rho^-2n))``. The misfit of a least-squares
    fit on any kept subset (:meth:`DCTCode.misfit`, per coordinate) is at most the 2-norm of the
    high-frequency part over all ``n`` samples: ``sqrt(n / 2) * ||(c_m)_(m >= dimension)||_2``.
    """
    code = DCTCode(length, dimension)
    if check_number("rho", rho) <= 1:
        raise ValueError(f"rho must be a finite number > 1, got {rho!r}")
    check_number("bound", bound)
    m = np.arange(code.dimension, code.length, dtype=np.float64)
    far = rho ** (-2.0 * code.length) / (1 - rho ** (-2.0 * code.length))
    coeffs = 2 * bound * (rho**-m + (rho**m + rho**-m) * far)
    return float(math.sqrt(code.length / 2) * np.sqrt(np.sum(coeffs**2)))


def _chebyshev_basis(points: np.ndarray, degree_count: int) -> np.ndarray:
    """``B[i, m] = T_m(points[i])`` for ``m < degree_count``."""
    return np.cos(np.outer(np.arccos(np.clip(points, -1.0, 1.0)), np.arange(degree_count)))


def _error_locator(values: np.ndarray, nodes: np.ndarray, dimension: int, erased: list[int],
                   errors: int) -> np.ndarray | None:
    """Chebyshev coefficients of the degree-``errors`` locator (None if degenerate)."""
    n = len(nodes)
    v = values.copy()
    v[erased] = 0.0
    frequencies = np.arange(2 * n + 1)
    syndromes = np.cos(np.outer(frequencies, np.arccos(nodes))) @ v  # (2n+1, D)
    gamma = np.array([1.0])
    for e in erased:
        gamma = chebyshev.chebmul(gamma, chebyshev.chebfromroots([nodes[e]]))
    degree = len(erased) + errors
    lift = np.zeros((degree + 1, errors + 1))  # coefficients of Gamma * T_j
    for j in range(errors + 1):
        product = chebyshev.chebmul(gamma, np.eye(errors + 1)[j][: j + 1])
        lift[: len(product), j] = product
    gram = np.zeros((errors + 1, errors + 1))
    for m in range(dimension + degree, n):
        rows = np.stack([(syndromes[m + a] + syndromes[abs(m - a)]) / 2
                         for a in range(degree + 1)], axis=1) @ lift
        gram += rows.T @ rows
    scale = np.abs(gram).max()
    if not scale > 0:
        return None
    _, vectors = np.linalg.eigh(gram / scale)
    locator = vectors[:, 0]
    if abs(locator[-1]) < 1e-8 * np.abs(locator).max():
        return None
    return locator
