"""Computer-aided search for the fault-tolerant Strassen-like scheme: check relations, PSMMs.

Güney and Arslan, "Fault-Tolerant Strassen-Like Matrix Multiplication": instead of replicating
one Strassen-like algorithm, run two *distinct* ones; their 14 sub-products satisfy linear
*check relations* (found by computer search) that detect and locate faulty nodes locally, and
two extra *parity sub-matrix multiplications* (PSMMs) strengthen the code, for 16 compute nodes
against 21 for three copies. The paper's algorithms, relations and PSMMs were not available to
me; this module is my reconstruction of the procedure, and its output is stored as data in
:mod:`verde.coding.strassen_checks` (regenerate with ``scripts/derive_strassen_checks.py``;
``tests/verde/coding/test_strassen_search.py`` re-derives it).

Everything is linear algebra on the 16-vectors of :mod:`verde.coding.bilinear`. With ``G`` the
``nodes x 16`` matrix of sub-product tensors, the node values are ``M = G x`` for the 16 unknown
elementary products ``x`` — a linear code; its check relations are the left null space of
``G``. Two distinct Strassen-like algorithms share the 4-dimensional span of the output blocks,
so their 14 tensors span at most 10 dimensions: at least 4 relations. A PSMM is a rank-one
product ``(sum a_p A_p)(sum b_q B_q)`` inside that span: it adds a node and a relation, never a
dimension.

Fault model (:func:`locatable`): a faulty node returns its product plus an arbitrary error block.
The syndrome ``H M`` of errors on a node set F spans ``span(H_F)`` (for generic errors), so F is
*located* iff ``H_F`` has full column rank and no other node's column lies in ``span(H_F)``.
The search ranks second algorithms and PSMM pairs by: every single node located; then the number
of located pairs; then triples; then the erasure patterns (missing nodes) of size <= 3 that
still determine C; then the fewest nonzero coefficients (additions). Ties go to the first in
enumeration order, so the search is deterministic.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from math import lcm

import numpy as np

from verde.coding.bilinear import (
    BilinearAlgorithm,
    Coefficients,
    SubProduct,
    output_tensors,
    strassen,
    transformed,
    unimodular_inverse,
    winograd,
)

_EPS = 1e-9


@dataclass(frozen=True)
class SchemeScore:
    """Located fault sets of size 1, 2, 3; recoverable erasure sets of size <= 3; additions."""

    singles: int
    pairs: int
    triples: int
    erasures: int
    nonzeros: int

    def key(self) -> tuple[int, int, int, int, int]:
        return (self.singles, self.pairs, self.triples, self.erasures, -self.nonzeros)


@dataclass(frozen=True)
class SchemeChoice:
    """What the search picked: the second algorithm, the PSMMs, relations and the score."""

    second: BilinearAlgorithm
    transform: tuple[tuple[tuple[int, int], ...], ...] | None
    psmms: tuple[SubProduct, ...]
    relations: np.ndarray
    score: SchemeScore


def tensors(products: Sequence[SubProduct]) -> np.ndarray:
    """``(len(products), 16)`` integer matrix of sub-product tensors."""
    return np.array([p.tensor() for p in products], dtype=np.int64)


def check_relations(products: Sequence[SubProduct]) -> np.ndarray:
    """Every minimal-support integer relation ``sum_m c_m M_m = 0`` among the products, by
    increasing support size until they span all relations (the left null space).

    Minimal support means *local*: a relation involves as few nodes as possible, so a fault
    is noticed by checks that read few nodes. Each relation is scaled to coprime integers with
    a positive first coefficient and verified exactly.
    """
    g = tensors(products)
    n = len(products)
    needed = n - np.linalg.matrix_rank(g.astype(np.float64))
    found: list[np.ndarray] = []
    if needed == 0:
        return np.zeros((0, n), dtype=np.int64)
    for size in range(2, n + 1):
        for support in itertools.combinations(range(n), size):
            relation = _support_relation(g, support)
            if relation is not None:
                found.append(relation)
        if found and np.linalg.matrix_rank(np.array(found, dtype=np.float64)) == needed:
            break
    out = np.array(found, dtype=np.int64)
    if np.any(out @ g):
        raise AssertionError("a check relation failed exact verification")  # a bug, not input
    return out


def locatable(relations: np.ndarray, faulty: Sequence[int]) -> bool:
    """Whether errors on exactly the nodes ``faulty`` are located (see module docstring)."""
    h = np.asarray(relations, dtype=np.float64)
    f = list(faulty)
    if not f:
        return True
    if h.shape[0] == 0:
        return False
    cols = h[:, f]
    if np.linalg.matrix_rank(cols, tol=_EPS) < len(f):
        return False
    q, _ = np.linalg.qr(cols)
    outside = np.linalg.norm(h - q @ (q.T @ h), axis=0)
    norms = np.maximum(np.linalg.norm(h, axis=0), 1.0)
    others = [c for c in range(h.shape[1]) if c not in f]
    return bool(np.all(outside[others] > _EPS * norms[others]))


def count_locatable(relations: np.ndarray, size: int) -> int:
    """How many node sets of ``size`` faulty nodes are located (:func:`locatable`, batched)."""
    h = np.asarray(relations, dtype=np.float64)
    n = h.shape[1]
    if size == 0:
        return 1
    if h.shape[0] < size or size > n:
        return 0
    sets = np.array(list(itertools.combinations(range(n), size)))
    cols = h[:, sets].transpose(1, 0, 2)  # (sets, relations, size)
    q, r = np.linalg.qr(cols)
    scale = max(1.0, float(np.abs(h).max()))
    full_rank = np.all(np.abs(np.diagonal(r, axis1=1, axis2=2)) > _EPS * scale, axis=1)
    outside = np.linalg.norm(h[None] - q @ (q.transpose(0, 2, 1) @ h[None]), axis=1)
    norms = np.maximum(np.linalg.norm(h, axis=0), 1.0)
    clear = outside > _EPS * norms[None]
    clear[np.arange(len(sets))[:, None], sets] = True  # the faulty nodes themselves
    return int(np.sum(full_rank & clear.all(axis=1)))


def determines_output(products: Sequence[SubProduct], available: Iterable[int]) -> bool:
    """Whether the sub-products at ``available`` determine all four blocks of C."""
    rows = list(available)
    if not rows:
        return False
    g = tensors(products)[rows].astype(np.float64)
    stacked = np.vstack([g, output_tensors().astype(np.float64)])
    return bool(np.linalg.matrix_rank(stacked) == np.linalg.matrix_rank(g))


def count_recoverable_erasures(products: Sequence[SubProduct], most: int = 3) -> int:
    """Sets of up to ``most`` missing nodes after which C is still determined (batched)."""
    g = tensors(products).astype(np.float64)
    c = output_tensors().astype(np.float64)
    n = len(products)
    total = 0
    for k in range(1, most + 1):
        kept = np.array([[i for i in range(n) if i not in gone]
                         for gone in itertools.combinations(range(n), k)])
        sub = g[kept]  # (sets, n - k, 16)
        with_c = np.concatenate([sub, np.broadcast_to(c, (len(kept), 4, 16))], axis=1)
        total += int(np.sum(np.linalg.matrix_rank(sub) == np.linalg.matrix_rank(with_c)))
    return total


def parity_basis(products: Sequence[SubProduct]) -> np.ndarray:
    """An orthonormal basis of all check relations (float; same row space as
    :func:`check_relations`, cheaper: what the search ranks with)."""
    g = tensors(products).astype(np.float64)
    u, sing, _ = np.linalg.svd(g)
    return u[:, int((sing > _EPS).sum()):].T


def all_singles_located(relations: np.ndarray) -> bool:
    """Every node's column is nonzero and no two columns are parallel."""
    h = np.asarray(relations, dtype=np.float64)
    if h.shape[0] == 0:
        return False
    norms = np.linalg.norm(h, axis=0)
    if np.any(norms < _EPS):
        return False
    unit = h / norms
    cosines = np.abs(unit.T @ unit)
    np.fill_diagonal(cosines, 0.0)
    return bool(np.all(cosines < 1 - _EPS))


def score(products: Sequence[SubProduct]) -> SchemeScore:
    """The ranking of a node set (see the module docstring)."""
    h = parity_basis(products)
    full = all_singles_located(h)
    singles = len(products) if full else count_locatable(h, 1)
    pairs = count_locatable(h, 2) if full else 0
    triples = count_locatable(h, 3) if full else 0
    nonzeros = int(sum(np.count_nonzero(p.left) + np.count_nonzero(p.right) for p in products))
    return SchemeScore(singles, pairs, triples, count_recoverable_erasures(products), nonzeros)


def psmm_candidates(products: Sequence[SubProduct]) -> list[SubProduct]:
    """Rank-one products with coefficients in {-1, 0, 1} inside the span of ``products``,
    excluding multiples of the products themselves (a copy is replication, not parity)."""
    pairs, table = _rank_one_table()
    g = tensors(products).astype(np.float64)
    _, sing, vt = np.linalg.svd(g)
    basis = vt[: int((sing > _EPS).sum())]
    inside = np.linalg.norm(table - (table @ basis.T) @ basis, axis=1) <= _EPS
    unit_g = g / np.linalg.norm(g, axis=1, keepdims=True)
    unit_t = table / np.linalg.norm(table, axis=1, keepdims=True)
    copies = (np.abs(unit_t @ unit_g.T) > 1 - _EPS).any(axis=1)
    return [SubProduct(*pairs[i]) for i in np.flatnonzero(inside & ~copies)]


@cache
def _rank_one_table() -> tuple[list[tuple[Coefficients, Coefficients]], np.ndarray]:
    """Every product with coefficients in {-1, 0, 1}, one per tensor up to sign."""
    vectors = [v for v in itertools.product((-1, 0, 1), repeat=4) if any(v)]
    seen: set[tuple[int, ...]] = set()
    pairs, rows = [], []
    for left in vectors:
        for right in vectors:
            t = np.outer(left, right).reshape(-1)
            key = tuple(int(v) for v in t)
            if key in seen or tuple(-v for v in key) in seen:
                continue
            seen.add(key)
            pairs.append((left, right))
            rows.append(t)
    return pairs, np.array(rows, dtype=np.float64)


def second_algorithm_candidates() -> list[tuple[BilinearAlgorithm,
                                                tuple[tuple[tuple[int, int], ...], ...] | None]]:
    """Winograd's variant, then every distinct transform of Strassen by unimodular ``P, Q, R``
    with entries in {-1, 0, 1} whose sub-products keep coefficients in {-1, 0, 1}."""
    out: list[tuple[BilinearAlgorithm, tuple[tuple[tuple[int, int], ...], ...] | None]] = [
        (winograd(), None)]
    seen = {_signature(winograd().products), _signature(strassen().products)}
    mats = [np.array(m, dtype=np.int64).reshape(2, 2)
            for m in itertools.product((-1, 0, 1), repeat=4)]
    mats = [m for m in mats if abs(int(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])) == 1]
    lefts = np.array([np.reshape(p.left, (2, 2)) for p in strassen().products])
    rights = np.array([np.reshape(p.right, (2, 2)) for p in strassen().products])

    def small(coefficients: np.ndarray) -> bool:
        return bool(np.abs(coefficients).max() <= 1)

    # The left factors depend on (P, Q) only and the right ones on (Q, R): filter each first.
    left_ok = {(i, j) for i, p in enumerate(mats) for j, q in enumerate(mats)
               if small(unimodular_inverse(p).T @ lefts @ q.T)}
    right_ok = {(j, k) for j, q in enumerate(mats) for k, r in enumerate(mats)
                if small(unimodular_inverse(q).T @ rights @ r.T)}
    for i, j, k in itertools.product(range(len(mats)), repeat=3):
        if (i, j) not in left_ok or (j, k) not in right_ok:
            continue
        p, q, r = mats[i], mats[j], mats[k]
        algorithm = transformed(strassen(), p, q, r, "strassen-transform")
        signature = _signature(algorithm.products)
        if signature in seen:
            continue
        seen.add(signature)
        key = tuple(tuple(tuple(int(v) for v in row) for row in m) for m in (p, q, r))
        out.append((algorithm, key))
    return out


def search(candidates: Sequence[tuple[BilinearAlgorithm,
                                      tuple[tuple[tuple[int, int], ...], ...] | None]]
           | None = None, *, psmms: int = 2) -> SchemeChoice:
    """Pick the second algorithm and ``psmms`` parity products that rank best (module doc)."""
    pool = second_algorithm_candidates() if candidates is None else list(candidates)
    best: SchemeChoice | None = None
    for algorithm, key in pool:
        base = (*strassen().products, *algorithm.products)
        g = tensors(base).astype(np.float64)
        if np.linalg.matrix_rank(g) > 10:
            continue
        extra = psmm_candidates(base)
        for chosen in itertools.combinations(extra, psmms):
            nodes = (*base, *chosen)
            s = _score_if_better(nodes, None if best is None else best.score)
            if s is not None:
                best = SchemeChoice(algorithm, key, tuple(chosen), np.zeros((0, 0)), s)
    if best is None:
        raise ValueError("no candidate second algorithm admits the requested PSMMs")
    nodes = (*strassen().products, *best.second.products, *best.psmms)
    return SchemeChoice(best.second, best.transform, best.psmms, check_relations(nodes),
                        best.score)


def _score_if_better(nodes: Sequence[SubProduct], incumbent: SchemeScore | None
                     ) -> SchemeScore | None:
    """:func:`score`, computed criterion by criterion and abandoned as soon as the node set
    cannot beat ``incumbent`` (the criteria are compared lexicographically)."""
    if incumbent is None:
        return score(nodes)
    h = parity_basis(nodes)
    full = all_singles_located(h)
    singles = len(nodes) if full else count_locatable(h, 1)
    parts = [singles]
    steps = [lambda: count_locatable(h, 2) if full else 0,
             lambda: count_locatable(h, 3) if full else 0,
             lambda: count_recoverable_erasures(nodes),
             lambda: -sum(np.count_nonzero(p.left) + np.count_nonzero(p.right) for p in nodes)]
    target = incumbent.key()
    for level, step in enumerate(steps):
        if parts[level] < target[level]:
            return None
        if parts[level] > target[level]:
            return score(nodes)
        parts.append(step())
    return score(nodes) if tuple(parts) > target else None


def _signature(products: Sequence[SubProduct]) -> frozenset[tuple[int, ...]]:
    out = set()
    for p in products:
        t = tuple(int(v) for v in p.tensor())
        out.add(max(t, tuple(-v for v in t)))
    return frozenset(out)


def _support_relation(g: np.ndarray, support: Sequence[int]) -> np.ndarray | None:
    """The relation with exactly this support, if the support is minimal; else None."""
    sub = g[list(support)].astype(np.float64)
    if np.linalg.matrix_rank(sub) != len(support) - 1:
        return None
    _, _, vt = np.linalg.svd(sub.T)
    v = vt[-1]
    if np.any(np.abs(v) < _EPS):
        return None
    v = v / np.abs(v).min()
    fractions = [Fraction(float(x)).limit_denominator(64) for x in v]
    scale = lcm(*(f.denominator for f in fractions))
    ints = np.array([int(f * scale) for f in fractions], dtype=np.int64)
    ints //= np.gcd.reduce(np.abs(ints))
    if ints[0] < 0:
        ints = -ints
    if np.any(ints @ g[list(support)]):
        return None
    out = np.zeros(len(g), dtype=np.int64)
    out[list(support)] = ints
    return out
