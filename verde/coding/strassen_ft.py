"""Fault-tolerant Strassen-like matrix multiplication: 16 nodes instead of 21.

After Güney and Arslan, "Fault-Tolerant Strassen-Like Matrix Multiplication" (the construction
and its search are reconstructed in :mod:`verde.coding.strassen_search`; the stored result is
:mod:`verde.coding.strassen_checks`). One level of 2x2 blocking; each compute node multiplies
two block combinations:

* :class:`FaultTolerantStrassen` — Strassen's 7 sub-products, the 7 of a second, distinct
  Strassen-like algorithm, and (by default) 2 parity sub-products: 16 nodes, 6 independent
  check relations. Decoding finds the fewest nodes whose errors explain the syndromes (each
  syndrome column must lie in the span of those nodes' check columns). With the stored scheme:
  any single faulty node is located and corrected whatever it returns; any two faulty nodes
  are located (all 120 pairs) when their errors are not aligned, and refused — never decoded
  wrongly — when they are; 392 of the 560 triples are located for generic errors, but three or
  more nodes *colluding* on aligned errors can mimic a smaller fault set and be miscorrected.
* :class:`ReplicatedStrassen` — the baseline: ``copies`` copies of Strassen's 7 sub-products,
  3 copies = 21 nodes, majority vote per sub-product (two copies agreeing on the same wrong
  value out-vote the honest one); 2 copies only detect.

Both decoders take the node results that arrived (missing ones are erasures) and either return
C with the faulty nodes they removed, or raise :class:`~verde.coding.errors.TooManyFaults`.
Values are compared against a rigorous floating-point bound: node ``m``'s honest result differs
from the exact product by at most ``gamma_(k+6) * rownorm(|X_m|) colnorm(|Y_m|)`` per element
(``k`` the inner dimension, ``|X_m|`` built from absolute blocks), so honest rounding never
raises an alarm, and deviations below that bound go unnoticed (they are rounding-sized).
A node's work is a pure function — :meth:`operands` then ``X @ Y`` — so it can become a provider
job whose result is committed and, under repops, settled bit for bit by a dispute.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from verde.coding._checks import check_int, check_number
from verde.coding.arrays import Array, narrow, to_numpy64
from verde.coding.bilinear import (
    SubProduct,
    join_blocks,
    recovery,
    split_blocks,
    strassen,
)
from verde.coding.errors import TooManyFaults

Rounding = Literal["rigorous", "probabilistic"]
PROBABILISTIC_LAMBDA = 12.0


@dataclass(frozen=True)
class MatmulNode:
    """One compute node: which sub-product it computes, and a readable name."""

    index: int
    name: str
    product: SubProduct


@dataclass(frozen=True)
class MatmulDecoding:
    """The product and what decoding it took."""

    product: Array
    faulty: tuple[int, ...]
    missing: tuple[int, ...]
    checks: int


class _BlockScheme:
    """What both schemes share: nodes, operands, rounding bounds, result validation."""

    nodes: tuple[MatmulNode, ...]
    tolerance_scale: float
    rounding: Rounding

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def operands(self, a: Array, b: Array, node: int) -> tuple[Array, Array]:
        """The two matrices node ``node`` multiplies (a pure function of ``a``, ``b``)."""
        self._check_node(node)
        a_blocks, b_blocks = split_blocks(a, b)
        return self.nodes[node].product.operands(a_blocks, b_blocks)

    def compute_all(self, a: Array, b: Array) -> dict[int, Array]:
        """Every node's honest result, computed here (for tests and benchmarks)."""
        a_blocks, b_blocks = split_blocks(a, b)
        out = {}
        for node in self.nodes:
            x, y = node.product.operands(a_blocks, b_blocks)
            out[node.index] = x @ y
        return out

    def rounding_bounds(self, a: Array, b: Array) -> np.ndarray:
        """``(n_nodes, block elements)``: how far an honest node's result may be from exact.

        ``gamma * rownorm(|X|) * colnorm(|Y|)`` per element (Cauchy-Schwarz on
        ``|fl(XY) - XY| <= gamma |X||Y|``), with ``gamma`` from :func:`rounding_gamma`.
        """
        gamma, rows, cols = self._rounding_factors(a, b)
        return np.array([gamma * np.outer(r, c).reshape(-1) for r, c in zip(rows, cols,
                                                                             strict=True)])

    def rounding_envelope(self, a: Array, b: Array, nodes: Sequence[int]) -> np.ndarray:
        """One bound per block element that covers every node in ``nodes``:
        ``gamma * max_m rownorm_m(i) * max_m colnorm_m(j)`` (an outer product, cheap)."""
        gamma, rows, cols = self._rounding_factors(a, b)
        return gamma * np.outer(np.max([rows[m] for m in nodes], axis=0),
                                np.max([cols[m] for m in nodes], axis=0)).reshape(-1)

    def _rounding_factors(self, a: Array, b: Array
                          ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """``gamma`` and each node's row norms of ``|X|`` and column norms of ``|Y|``."""
        a_blocks, b_blocks = split_blocks(a, b)
        abs_a = [np.abs(to_numpy64(x)) for x in a_blocks]
        abs_b = [np.abs(to_numpy64(y)) for y in b_blocks]
        inner = int(a.shape[1]) // 2
        gamma = rounding_gamma(inner, _unit_roundoff(a), self.rounding) * self.tolerance_scale
        rows: dict[tuple[int, ...], np.ndarray] = {}
        cols: dict[tuple[int, ...], np.ndarray] = {}
        for node in self.nodes:
            left, right = node.product.left, node.product.right
            if left not in rows:
                x = sum(abs(c) * blk for c, blk in zip(left, abs_a, strict=True) if c)
                rows[left] = np.sqrt((np.asarray(x) ** 2).sum(axis=1))
            if right not in cols:
                y = sum(abs(c) * blk for c, blk in zip(right, abs_b, strict=True) if c)
                cols[right] = np.sqrt((np.asarray(y) ** 2).sum(axis=0))
        return (gamma, [rows[n.product.left] for n in self.nodes],
                [cols[n.product.right] for n in self.nodes])

    def _values(self, a: Array, b: Array, results: Mapping[int, Array]
                ) -> tuple[np.ndarray, list[int], tuple[int, int]]:
        split_blocks(a, b)  # validates the matrices before anything is read from the results
        if not results:
            raise TooManyFaults(type(self).__name__, (), "no node answered")
        shape = (int(a.shape[0]) // 2, int(b.shape[1]) // 2)
        for node, value in results.items():
            self._check_node(node)
            if tuple(value.shape) != shape:
                raise ValueError(f"node {node} returned shape {tuple(value.shape)}, expected "
                                 f"{shape}")
        values = np.zeros((self.n_nodes, shape[0] * shape[1]))
        for node, value in results.items():
            values[node] = to_numpy64(value).reshape(-1)
        return values, sorted(results), shape

    def _check_node(self, node: int) -> None:
        check_int("node", node, 0, self.n_nodes)


class FaultTolerantStrassen(_BlockScheme):
    """Two distinct Strassen-like algorithms plus (optionally) two PSMMs, with check relations.

    ``rounding`` chooses the allowance for honest rounding (:func:`rounding_gamma`):
    ``"rigorous"`` never flags an honest node but lets deviations below the worst-case bound
    pass (for float32 at inner dimension 1024 that is roughly 1e-3 of an output's scale);
    ``"probabilistic"`` is several times tighter and assumes random rounding errors.
    ``tolerance_scale`` multiplies either (smaller catches smaller deviations, at the risk of
    false alarms — which here only remove an honest node's value, not the result).
    ``allow_unchecked`` lets :meth:`decode` return C when erasures left no check relation.
    """

    def __init__(self, *, with_psmms: bool = True, rounding: Rounding = "rigorous",
                 tolerance_scale: float = 1.0, allow_unchecked: bool = False) -> None:
        from verde.coding import strassen_checks as data

        if not isinstance(with_psmms, bool):
            raise ValueError(f"with_psmms must be a bool, got {with_psmms!r}")
        check_number("tolerance_scale", tolerance_scale, positive=True)
        second = [SubProduct(tuple(left), tuple(right)) for left, right in data.SECOND_PRODUCTS]
        psmms = [SubProduct(tuple(left), tuple(right)) for left, right in data.PSMMS]
        products = [*strassen().products, *second, *(psmms if with_psmms else [])]
        names = ([f"strassen.{i + 1}" for i in range(7)]
                 + [f"{data.SECOND_NAME}.{i + 1}" for i in range(7)]
                 + ([f"psmm.{i + 1}" for i in range(len(psmms))] if with_psmms else []))
        self.nodes = tuple(MatmulNode(i, n, p) for i, (n, p) in
                           enumerate(zip(names, products, strict=True)))
        relations = np.array(data.CHECK_RELATIONS, dtype=np.float64)
        if not with_psmms:  # relations with no PSMM term are exactly the 14 nodes' relations
            relations = _punctured_relations(relations, [14, 15])[:, :14]
        self.relations = _sparsest_basis(relations)
        self.tolerance_scale = float(tolerance_scale)
        self.rounding = _check_rounding(rounding)
        self.allow_unchecked = allow_unchecked

    def honest_margin(self, a: Array, b: Array, results: Mapping[int, Array]) -> float:
        """How close results known to be honest came to an alarm: the largest normalised
        syndrome over the alarm level (below 1: no alarm). Calibrate on a trusted product of
        the same shape and kind of data, then ``tolerance_scale = margin * safety`` narrows
        the allowance from the rounding bound to what honest rounding actually does."""
        values, answered, _ = self._values(a, b, results)
        missing = [i for i in range(self.n_nodes) if i not in results]
        checks = _punctured_relations(self.relations, missing)[:, answered]
        if checks.shape[0] == 0:
            raise TooManyFaults("fault-tolerant Strassen", (), "no check relation left")
        syndrome, limit = _normalised_syndrome(checks, values[answered],
                                               self.rounding_envelope(a, b, answered))
        return float(np.linalg.norm(syndrome, axis=0).max() / limit)

    def decode(self, a: Array, b: Array, results: Mapping[int, Array]) -> MatmulDecoding:
        """C from the results that arrived: locate faulty nodes by the check relations (the
        fewest nodes whose removal explains the syndromes), drop them, recover C."""
        values, answered, shape = self._values(a, b, results)
        missing = tuple(i for i in range(self.n_nodes) if i not in results)
        checks = _punctured_relations(self.relations, missing)[:, answered]
        envelope = self.rounding_envelope(a, b, answered)
        faulty: tuple[int, ...] = ()
        if checks.shape[0] == 0:
            if not self.allow_unchecked:
                raise TooManyFaults("fault-tolerant Strassen", (), f"nodes {list(missing)} are "
                                    "missing and no check relation is left to vouch for C")
        else:
            faulty = _locate(checks, values[answered], envelope, answered)
        usable = [i for i in answered if i not in faulty]
        products = [n.product for n in self.nodes]
        try:
            coeffs = _recovery_preferring_algorithms(products, usable)
        except ValueError as exc:
            raise TooManyFaults("fault-tolerant Strassen", faulty,
                                f"the nodes left ({usable}) do not determine C: {exc}") from exc
        blocks = coeffs @ values
        first = results[answered[0]]
        product = join_blocks([narrow(_like(blk.reshape(shape), first), first) for blk in blocks])
        return MatmulDecoding(product, faulty, missing, int(np.linalg.matrix_rank(checks))
                              if checks.size else 0)


class ReplicatedStrassen(_BlockScheme):
    """``copies`` copies of Strassen's 7 sub-products; majority vote per sub-product."""

    def __init__(self, copies: int = 3, *, rounding: Rounding = "rigorous",
                 tolerance_scale: float = 1.0) -> None:
        check_int("copies", copies, 1)
        check_number("tolerance_scale", tolerance_scale, positive=True)
        self.copies = copies
        self.nodes = tuple(MatmulNode(c * 7 + k, f"copy{c + 1}.strassen.{k + 1}", p)
                           for c in range(copies) for k, p in enumerate(strassen().products))
        self.tolerance_scale = float(tolerance_scale)
        self.rounding = _check_rounding(rounding)

    def decode(self, a: Array, b: Array, results: Mapping[int, Array]) -> MatmulDecoding:
        """Per sub-product: copies that agree within rounding form factions; a faction with a
        strict majority of the answered copies (and at least two members, or the only copy)
        wins; otherwise the fault is detected but not corrected."""
        values, answered, shape = self._values(a, b, results)
        bounds = self.rounding_bounds(a, b)
        chosen = np.zeros((7, values.shape[1]))
        faulty: list[int] = []
        for k in range(7):
            copies = [c * 7 + k for c in range(self.copies) if c * 7 + k in results]
            if not copies:
                raise TooManyFaults("replicated Strassen", faulty,
                                    f"no copy of sub-product {k + 1} answered")
            factions: list[list[int]] = []
            for node in copies:
                for faction in factions:
                    ref = faction[0]
                    if np.all(np.abs(values[node] - values[ref]) <= bounds[node] + bounds[ref]):
                        faction.append(node)
                        break
                else:
                    factions.append([node])
            factions.sort(key=len, reverse=True)
            winner = factions[0]
            if len(copies) > 1 and (len(winner) < 2 or 2 * len(winner) <= len(copies)):
                raise TooManyFaults("replicated Strassen", faulty + copies,
                                    f"copies of sub-product {k + 1} disagree: "
                                    + " vs ".join(str(f) for f in factions))
            faulty.extend(n for f in factions[1:] for n in f)
            chosen[k] = values[winner[0]]
        blocks = strassen().outputs @ chosen
        first = results[answered[0]]
        product = join_blocks([narrow(_like(blk.reshape(shape), first), first) for blk in blocks])
        missing = tuple(i for i in range(self.n_nodes) if i not in results)
        return MatmulDecoding(product, tuple(sorted(faulty)), missing, self.copies - 1)


def _locate(checks: np.ndarray, values: np.ndarray, envelope: np.ndarray,
            nodes: Sequence[int]) -> tuple[int, ...]:
    """Fewest nodes whose errors explain the syndromes; TooManyFaults if none or if two
    explanations give different results (naming every node of them as a candidate).
    ``checks``' columns and ``values``' rows are the answered ``nodes``, in order."""
    h = checks.astype(np.float64)
    hs = h / np.abs(h).sum(axis=1)[:, None]
    syndrome, limit = _normalised_syndrome(h, values, envelope)
    norms = np.linalg.norm(syndrome, axis=0)
    flagged = np.flatnonzero(norms > limit)
    if flagged.size == 0:
        return ()
    sample = syndrome[:, flagged[np.argsort(norms[flagged])[::-1][:64]]]
    rank = np.linalg.matrix_rank(hs)
    n = h.shape[1]
    for size in range(1, rank):
        found = [f for f in itertools.combinations(range(n), size)
                 if _explains(hs[:, list(f)], sample, limit)
                 and _explains(hs[:, list(f)], syndrome[:, flagged], limit)]
        if len(found) == 1:
            return tuple(nodes[i] for i in found[0])
        if found:
            sets = [tuple(nodes[i] for i in f) for f in found]
            raise TooManyFaults("fault-tolerant Strassen", (),
                                f"faults detected; node sets {sets} explain them equally",
                                candidates=sorted({i for f in sets for i in f}))
    raise TooManyFaults("fault-tolerant Strassen", (),
                        f"faults detected that no set of fewer than {rank} nodes explains")


def _normalised_syndrome(checks: np.ndarray, values: np.ndarray, envelope: np.ndarray
                         ) -> tuple[np.ndarray, float]:
    """Syndromes scaled so that honest rounding keeps every column's 2-norm within ``limit``.

    Honest ``|syndrome_jc| <= sum_m |h_jm| bound_mc <= sum_m |h_jm| w_c`` with ``w`` the
    envelope of all nodes' bounds: dividing column c by ``w_c`` (which keeps every column's
    span) and row j by ``sum_m |h_jm|`` makes each entry at most 1, so each column's norm at
    most ``sqrt(rows)``.
    """
    h = checks.astype(np.float64)
    weight = envelope
    weight = np.where(weight > 0, weight, np.finfo(np.float64).tiny)
    hs = h / np.abs(h).sum(axis=1)[:, None]
    return (hs @ values) / weight, float(np.sqrt(h.shape[0]))


def _explains(columns: np.ndarray, syndrome: np.ndarray, limit: float) -> bool:
    """Whether every syndrome column lies within ``limit`` of the span of ``columns``."""
    q, r = np.linalg.qr(columns)
    if np.any(np.abs(np.diag(r)) < 1e-12 * max(1.0, float(np.abs(r).max()))):
        return False
    residual = syndrome - q @ (q.T @ syndrome)
    return bool(np.all(np.linalg.norm(residual, axis=0) <= limit))


def _sparsest_basis(relations: np.ndarray) -> np.ndarray:
    """Independent relations that span them all, sparsest first: the fewest syndromes to
    compute per element, each reading as few nodes as possible (local checks)."""
    order = sorted(range(len(relations)),
                   key=lambda i: (int(np.sum(np.abs(relations[i]) > 1e-12)),
                                  float(np.abs(relations[i]).max()), i))
    chosen: list[np.ndarray] = []
    for i in order:
        trial = [*chosen, relations[i]]
        if np.linalg.matrix_rank(np.array(trial)) == len(trial):
            chosen = trial
    return np.array(chosen).reshape(-1, relations.shape[1])


def _punctured_relations(relations: np.ndarray, missing: Sequence[int]) -> np.ndarray:
    """Combinations of the relations that do not read the ``missing`` nodes."""
    h = relations.astype(np.float64)
    if not missing:
        return h
    sub = h[:, list(missing)]
    u, sing, _ = np.linalg.svd(sub)
    rank = int((sing > 1e-9).sum())
    out = u[:, rank:].T @ h
    out[:, list(missing)] = 0.0
    _, sing, vt = np.linalg.svd(out, full_matrices=False) if out.size else (None, np.zeros(0),
                                                                              out)
    return vt[: int((sing > 1e-9).sum())]


def _recovery_preferring_algorithms(products: Sequence[SubProduct], usable: Sequence[int]
                                    ) -> np.ndarray:
    """Output coefficients: one whole algorithm's own formulas when its 7 nodes are usable
    (integer coefficients, no extra rounding), else any exact recovery from the usable nodes."""
    for start in (0, 7):
        group = list(range(start, start + 7))
        if all(i in usable for i in group):
            return recovery(products, group, exact=True)
    return recovery(products, usable)


def _like(block: np.ndarray, first: Array) -> Array:
    """A float64 numpy block as the array type of ``first`` (torch: same device)."""
    if type(first).__module__.startswith("torch"):
        import torch

        return torch.from_numpy(np.ascontiguousarray(block)).to(first.device)
    return block


def _check_rounding(rounding: object) -> Rounding:
    if rounding not in ("rigorous", "probabilistic"):
        raise ValueError(f"rounding must be 'rigorous' or 'probabilistic', got {rounding!r}")
    return rounding  # type: ignore[return-value]


def _unit_roundoff(a: Array) -> float:
    if type(a).__module__.startswith("torch"):
        import torch

        return float(torch.finfo(a.dtype).eps) / 2
    return float(np.finfo(np.asarray(a).dtype).eps) / 2


def rounding_gamma(inner: int, u: float, rounding: Rounding = "rigorous",
                   confidence: float = PROBABILISTIC_LAMBDA) -> float:
    """Relative error allowance of one node: operands summed from up to 4 blocks (3 roundings
    each side), then an inner product of length ``inner``.

    ``"rigorous"``: ``gamma_(inner+6) = m u / (1 - m u)``, the worst case of any summation order
    (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.1). ``"probabilistic"``: the
    inner product's share becomes ``exp(lambda sqrt(inner) u + inner u^2 / (1 - u)) - 1``
    (Higham and Mary, SIAM J. Sci. Comput. 2019, Thm 3.1: holds with probability at least
    ``1 - 2 exp(-lambda^2 (1-u)^2 / 2)`` per rounding chain if rounding errors are independent
    and mean zero); ``lambda = 12`` makes a false alarm on a 4096 x 4096 product less likely
    than 1e-20.
    """
    def worst(m: int) -> float:
        if m * u >= 1:
            raise ValueError(f"inner dimension too large for a rounding bound at unit roundoff "
                             f"{u}")
        return m * u / (1 - m * u)

    if rounding == "rigorous":
        return worst(inner + 6)
    if rounding != "probabilistic":
        raise ValueError(f"rounding must be 'rigorous' or 'probabilistic', got {rounding!r}")
    inner_share = math.expm1(confidence * math.sqrt(inner) * u + inner * u * u / (1 - u))
    return (1 + inner_share) * (1 + worst(6)) - 1

