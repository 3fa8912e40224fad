"""Strassen-like algorithms as data: they multiply, transform, and recover C exactly."""

import numpy as np
import pytest
import torch

from verde.coding.bilinear import (
    BilinearAlgorithm,
    SubProduct,
    join_blocks,
    output_tensors,
    recovery,
    split_blocks,
    strassen,
    transformed,
    unimodular_inverse,
    winograd,
)


@pytest.mark.parametrize("algorithm", [strassen(), winograd()], ids=lambda a: a.name)
def test_algorithms_multiply(algorithm: BilinearAlgorithm) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 8)), rng.standard_normal((8, 4))
    np.testing.assert_allclose(algorithm.multiply(a, b), a @ b, atol=1e-12)
    assert len(algorithm.products) == 7


def test_integer_inputs_multiply_exactly() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(-9, 10, (4, 6)).astype(np.float64)
    b = rng.integers(-9, 10, (6, 2)).astype(np.float64)
    for algorithm in (strassen(), winograd()):
        assert np.array_equal(algorithm.multiply(a, b), a @ b)


def test_output_coefficients_are_integers_and_exact() -> None:
    for algorithm in (strassen(), winograd()):
        out = algorithm.outputs
        assert np.array_equal(out, np.round(out))
        tensors = np.array([p.tensor() for p in algorithm.products])
        assert np.array_equal(out.astype(np.int64) @ tensors, output_tensors())


def test_transform_gives_another_strassen_like_algorithm() -> None:
    p = np.array([[1, 1], [0, 1]])
    q = np.array([[0, 1], [1, 0]])
    r = np.array([[1, 0], [-1, 1]])
    other = transformed(strassen(), p, q, r, "t")
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4, 4)), rng.standard_normal((4, 6))
    np.testing.assert_allclose(other.multiply(a, b), a @ b, atol=1e-12)
    assert {tuple(s.tensor()) for s in other.products} != {
        tuple(s.tensor()) for s in strassen().products}


def test_recovery_from_too_few_products_is_refused() -> None:
    with pytest.raises(ValueError, match="do not determine block"):
        recovery(strassen().products, range(6))


def test_torch_blocks_round_trip() -> None:
    a = torch.arange(16.0).reshape(4, 4)
    blocks, _ = split_blocks(a, a)
    assert torch.equal(join_blocks(blocks), a)
    x, _ = strassen().products[0].operands(blocks, blocks)
    assert torch.equal(x, blocks[0] + blocks[3])
    assert strassen().products[0].describe() == "(A11 +A22)(B11 +B22)"


def test_unimodular_inverse() -> None:
    m = np.array([[2, 1], [1, 1]])
    assert np.array_equal(unimodular_inverse(m) @ m, np.eye(2, dtype=np.int64))


@pytest.mark.parametrize(("left", "right", "match"), [
    ((1, 0, 0), (1, 0, 0, 0), "left must be 4 ints"),
    ((1, 0, 0, 0), (0, 0, 0, 0), "right must not be all zero"),
    ((1.0, 0, 0, 0), (1, 0, 0, 0), "left must be 4 ints"),
    ((True, 0, 0, 0), (1, 0, 0, 0), "left must be 4 ints"),
])
def test_bad_sub_products_are_refused(left: tuple, right: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SubProduct(left, right)


def test_bad_matrices_are_refused() -> None:
    with pytest.raises(ValueError, match="even dimensions"):
        split_blocks(np.zeros((3, 4)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="matching inner"):
        split_blocks(np.zeros((2, 4)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="determinant"):
        transformed(strassen(), np.array([[2, 0], [0, 1]]), np.eye(2, dtype=int),
                    np.eye(2, dtype=int), "bad")
    with pytest.raises(ValueError, match="at least one"):
        BilinearAlgorithm("empty", ())
