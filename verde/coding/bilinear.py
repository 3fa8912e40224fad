"""Strassen-like 2x2 block algorithms as data: sub-products and the tensors they compute.

A 2x2 block matrix product ``C = A B`` (blocks ordered 11, 12, 21, 22) is computed by a
Strassen-like algorithm as a few *sub-products* ``M = (sum_p a_p A_p)(sum_q b_q B_q)`` — one
compute node each — followed by additions. As a bilinear form, ``M`` is the rank-one tensor
``a (x) b`` over the 16 elementary products ``A_p B_q``; ``C_ij`` is the tensor of
``sum_k A_ik B_kj``. Everything the fault-tolerant scheme needs — output formulas, check
relations between the sub-products of two algorithms, parity sub-products — is linear algebra
on these 16-vectors, done here in exact integer arithmetic where it matters.

Algorithms: :func:`strassen` (1969) and :func:`winograd` (Winograd's variant, 15 additions);
any other Strassen-like algorithm arises from Strassen's by the symmetry ``(A, B, C) ->
(P^-1 A Q, Q^-1 B R, P^-1 C R)`` (de Groote, 1978), which :func:`transformed` applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache, cached_property

import numpy as np

from verde.coding.arrays import Array

Coefficients = tuple[int, int, int, int]
BLOCKS = ("11", "12", "21", "22")


@dataclass(frozen=True)
class SubProduct:
    """``(sum_p left[p] A_p) @ (sum_q right[q] B_q)``, blocks in the order 11, 12, 21, 22."""

    left: Coefficients
    right: Coefficients

    def __post_init__(self) -> None:
        for name in ("left", "right"):
            value = getattr(self, name)
            if len(value) != 4 or not all(isinstance(c, int) and not isinstance(c, bool)
                                          for c in value):
                raise ValueError(f"{name} must be 4 ints (blocks 11, 12, 21, 22), got {value!r}")
            if not any(value):
                raise ValueError(f"{name} must not be all zero")

    def tensor(self) -> np.ndarray:
        """The 16 integer coefficients of ``A_p B_q`` (row p, column q, flattened)."""
        return np.outer(self.left, self.right).reshape(-1).astype(np.int64)

    def operands(self, a_blocks: Sequence[Array], b_blocks: Sequence[Array]
                 ) -> tuple[Array, Array]:
        """The two matrices this node multiplies, formed from the four blocks of A and of B."""
        return _combination(self.left, a_blocks), _combination(self.right, b_blocks)

    def describe(self) -> str:
        return f"({_format(self.left, 'A')})({_format(self.right, 'B')})"


@dataclass(frozen=True)
class BilinearAlgorithm:
    """A named list of sub-products that, combined linearly, give the four blocks of C."""

    name: str
    products: tuple[SubProduct, ...]

    def __post_init__(self) -> None:
        if not self.products:
            raise ValueError("an algorithm needs at least one sub-product")

    @cached_property
    def outputs(self) -> np.ndarray:
        """``(4, len(products))``: block ``C_c = sum_k outputs[c, k] M_k`` (exact, cached)."""
        return recovery(self.products, range(len(self.products)), exact=True)

    def multiply(self, a: Array, b: Array) -> Array:
        """``a @ b`` computed by this algorithm (one level), for checking it."""
        a_blocks, b_blocks = split_blocks(a, b)
        values = [x @ y for x, y in (p.operands(a_blocks, b_blocks) for p in self.products)]
        return join_blocks([_combination(tuple(row), values) for row in self.outputs])


def output_tensors() -> np.ndarray:
    """``(4, 16)`` integer tensors of C11, C12, C21, C22 over the products ``A_p B_q``."""
    out = np.zeros((4, 16), dtype=np.int64)
    for i in range(2):
        for j in range(2):
            for k in range(2):
                out[2 * i + j, 4 * (2 * i + k) + (2 * k + j)] = 1
    return out


def recovery(products: Sequence[SubProduct], available: Sequence[int] | range, *,
             exact: bool = False) -> np.ndarray:
    """``(4, len(products))`` coefficients giving each block of C from the ``available``
    products (zero elsewhere); ValueError when they do not determine C.

    ``exact=True`` solves over the rationals (an algorithm's own formulas, integers here);
    otherwise the minimum-norm float solution, checked to reproduce C's tensors. Both are
    remembered: decoders ask again for the same sets.
    """
    return _recovery(tuple(products), tuple(available), exact).copy()


@cache
def _recovery(products: tuple[SubProduct, ...], available: tuple[int, ...], exact: bool
              ) -> np.ndarray:
    rows = list(available)
    out = np.zeros((4, len(products)))
    if not exact:
        g = np.array([products[i].tensor() for i in rows], dtype=np.float64).reshape(-1, 16)
        target = output_tensors().astype(np.float64)
        coeffs = np.linalg.lstsq(g.T, target.T, rcond=None)[0].T if rows else np.zeros((4, 0))
        bad = np.abs(coeffs @ g - target).max(axis=1) > 1e-9
        if rows and not bad.any():
            out[:, rows] = coeffs
            return out
        block = int(np.argmax(bad)) if rows else 0
        raise ValueError(f"products {rows} do not determine block C{BLOCKS[block]}")
    tensors = [[Fraction(int(v)) for v in products[i].tensor()] for i in rows]
    for c, target_row in enumerate(output_tensors()):
        solution = _solve_exact(tensors, [Fraction(int(v)) for v in target_row])
        if solution is None:
            raise ValueError(f"products {rows} do not determine block C{BLOCKS[c]}")
        for i, value in zip(rows, solution, strict=True):
            out[c, i] = float(value)
    return out


def transformed(algorithm: BilinearAlgorithm, p: np.ndarray, q: np.ndarray, r: np.ndarray,
                name: str) -> BilinearAlgorithm:
    """The algorithm for ``A B`` obtained by running ``algorithm`` on ``P^-1 A Q`` and
    ``Q^-1 B R`` (then ``C = P C' R^-1``); ``p``, ``q``, ``r`` are 2x2 integer matrices with
    determinant +-1."""
    mats = []
    for label, m in (("P", p), ("Q", q), ("R", r)):
        arr = np.asarray(m)
        if arr.shape != (2, 2) or not np.issubdtype(arr.dtype, np.integer) \
                or round(abs(np.linalg.det(arr))) != 1:
            raise ValueError(f"{label} must be a 2x2 integer matrix with determinant +-1")
        mats.append(arr.astype(np.int64))
    p_, q_, _ = mats
    p_inv, q_inv = unimodular_inverse(p_), unimodular_inverse(q_)
    products = []
    for sub in algorithm.products:
        left = p_inv.T @ np.array(sub.left).reshape(2, 2) @ q_.T
        right = q_inv.T @ np.array(sub.right).reshape(2, 2) @ mats[2].T
        products.append(SubProduct(tuple(int(v) for v in left.reshape(-1)),
                                   tuple(int(v) for v in right.reshape(-1))))
    return BilinearAlgorithm(name, tuple(products))


def split_blocks(a: Array, b: Array) -> tuple[list[Array], list[Array]]:
    """The four blocks of ``a`` and of ``b`` (11, 12, 21, 22); all dimensions must be even."""
    if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"need 2-d matrices with matching inner dimension, got {tuple(a.shape)}"
                         f" and {tuple(b.shape)}")
    if any(d % 2 for d in (*a.shape, b.shape[1])):
        raise ValueError(f"block algorithms need even dimensions, got {tuple(a.shape)} x "
                         f"{tuple(b.shape)} (pad with zeros)")
    return _quarters(a), _quarters(b)


def join_blocks(blocks: Sequence[Array]) -> Array:
    """``[[C11, C12], [C21, C22]]`` as one matrix, in the blocks' own array type."""
    c11, c12, c21, c22 = blocks
    if type(c11).__module__.startswith("torch"):
        import torch

        return torch.cat([torch.cat([c11, c12], dim=1), torch.cat([c21, c22], dim=1)], dim=0)
    return np.block([[c11, c12], [c21, c22]])


def _quarters(m: Array) -> list[Array]:
    r, c = m.shape[0] // 2, m.shape[1] // 2
    return [m[:r, :c], m[:r, c:], m[r:, :c], m[r:, c:]]


def _combination(coefficients: Sequence[float], blocks: Sequence[Array]) -> Array:
    """``sum_p c_p blocks[p]`` skipping zeros, with no multiply for +-1 (exact for +-1 sums)."""
    total = None
    for c, blk in zip(coefficients, blocks, strict=True):
        if c == 0:
            continue
        term = blk if c == 1 else -blk if c == -1 else blk * c
        total = term if total is None else total + term
    if total is None:
        raise ValueError("a combination needs a nonzero coefficient")
    return total


def _format(coefficients: Coefficients, letter: str) -> str:
    parts = []
    for c, blk in zip(coefficients, BLOCKS, strict=True):
        if c:
            sign = "-" if c < 0 else "+"
            mag = "" if abs(c) == 1 else str(abs(c))
            parts.append(f"{sign}{mag}{letter}{blk}")
    text = " ".join(parts)
    return text[1:] if text.startswith("+") else text


def unimodular_inverse(m: np.ndarray) -> np.ndarray:
    """The integer inverse of a 2x2 integer matrix with determinant +-1."""
    det = int(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])
    return np.array([[m[1, 1], -m[0, 1]], [-m[1, 0], m[0, 0]]], dtype=np.int64) * det


def _solve_exact(columns: list[list[Fraction]], target: list[Fraction]) -> list[Fraction] | None:
    """Some ``x`` with ``sum_i x_i columns[i] = target`` (Gaussian elimination), or None."""
    n = len(columns)
    rows = [[columns[i][k] for i in range(n)] + [target[k]] for k in range(len(target))]
    pivots: list[int] = []
    r = 0
    for col in range(n):
        pivot = next((k for k in range(r, len(rows)) if rows[k][col] != 0), None)
        if pivot is None:
            continue
        rows[r], rows[pivot] = rows[pivot], rows[r]
        lead = rows[r][col]
        rows[r] = [v / lead for v in rows[r]]
        for k in range(len(rows)):
            if k != r and rows[k][col] != 0:
                factor = rows[k][col]
                rows[k] = [a - factor * b for a, b in zip(rows[k], rows[r], strict=True)]
        pivots.append(col)
        r += 1
    if any(row[n] != 0 for row in rows[r:]):
        return None
    x = [Fraction(0)] * n
    for k, col in enumerate(pivots):
        x[col] = rows[k][n]
    return x


@cache
def strassen() -> BilinearAlgorithm:
    """Strassen (1969): seven sub-products, 18 additions."""
    a11, a22 = (1, 0, 0, 0), (0, 0, 0, 1)
    return BilinearAlgorithm("strassen", (
        SubProduct((1, 0, 0, 1), (1, 0, 0, 1)),    # (A11 + A22)(B11 + B22)
        SubProduct((0, 0, 1, 1), a11),             # (A21 + A22) B11
        SubProduct(a11, (0, 1, 0, -1)),            # A11 (B12 - B22)
        SubProduct(a22, (-1, 0, 1, 0)),            # A22 (B21 - B11)
        SubProduct((1, 1, 0, 0), a22),             # (A11 + A12) B22
        SubProduct((-1, 0, 1, 0), (1, 1, 0, 0)),   # (A21 - A11)(B11 + B12)
        SubProduct((0, 1, 0, -1), (0, 0, 1, 1)),   # (A12 - A22)(B21 + B22)
    ))


@cache
def winograd() -> BilinearAlgorithm:
    """Winograd's variant of Strassen's algorithm: seven sub-products, 15 additions."""
    # S1 = A21 + A22, S2 = S1 - A11, S3 = A11 - A21, S4 = A12 - S2;
    # T1 = B12 - B11, T2 = B22 - T1, T3 = B22 - B12, T4 = T2 - B21.
    return BilinearAlgorithm("winograd", (
        SubProduct((1, 0, 0, 0), (1, 0, 0, 0)),      # A11 B11
        SubProduct((0, 1, 0, 0), (0, 0, 1, 0)),      # A12 B21
        SubProduct((1, 1, -1, -1), (0, 0, 0, 1)),    # S4 B22
        SubProduct((0, 0, 0, 1), (1, -1, -1, 1)),    # A22 T4
        SubProduct((0, 0, 1, 1), (-1, 1, 0, 0)),     # S1 T1
        SubProduct((-1, 0, 1, 1), (1, -1, 0, 1)),    # S2 T2
        SubProduct((1, 0, -1, 0), (0, -1, 0, 1)),    # S3 T3
    ))

