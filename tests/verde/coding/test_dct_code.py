"""DCT code: locates up to (r - s) / 2 wrong answers next to s erasures, refuses more."""

import numpy as np
import pytest

from verde.coding import TooManyFaults
from verde.coding.dct_code import DCTCode, dct_tail_bound


def _codeword(code: DCTCode, width: int, seed: int) -> np.ndarray:
    """Samples of a random polynomial of degree < dimension at the code's nodes."""
    rng = np.random.default_rng(seed)
    coeffs = rng.standard_normal((code.dimension, width))
    return np.cos(np.outer(np.arccos(code.nodes), np.arange(code.dimension))) @ coeffs


def _corrupt(values: np.ndarray, erased: list[int], errors: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, list[int]]:
    present = [i for i in range(len(values)) if i not in erased]
    bad = sorted(int(i) for i in rng.choice(present, errors, replace=False))
    out = values.copy()
    out[bad] += rng.choice([-1.0, 1.0], (errors, values.shape[1])) * rng.uniform(
        0.5, 2.0, (errors, 1))
    out[erased] = np.nan  # never read
    return out, bad


def test_locates_every_correctable_pattern() -> None:
    code = DCTCode(20, 12)
    rng = np.random.default_rng(0)
    values = _codeword(code, 3, 1)
    for erasures in range(code.redundancy + 1):
        for _ in range(12):
            erased = sorted(int(i) for i in rng.choice(20, erasures, replace=False))
            errors = int(rng.integers(0, code.correctable(erasures) + 1))
            noisy, bad = _corrupt(values, erased, errors, rng)
            got = code.decode(noisy, erased, tolerance=1e-8)
            assert list(got.located) == bad, (erased, bad, got)
            assert got.residual <= 1e-8


def test_refuses_beyond_the_bound() -> None:
    """Detection is guaranteed while errors + correctable <= r - s (no miscorrection possible)."""
    code = DCTCode(20, 12)
    rng = np.random.default_rng(2)
    values = _codeword(code, 3, 3)
    for erasures in range(code.redundancy - 1):
        limit = code.correctable(erasures)
        for errors in range(limit + 1, code.redundancy - erasures - limit + 1):
            erased = sorted(int(i) for i in rng.choice(20, erasures, replace=False))
            noisy, _ = _corrupt(values, erased, errors, rng)
            with pytest.raises(TooManyFaults, match="no set of at most"):
                code.decode(noisy, erased, tolerance=1e-8)


def test_too_many_erasures_are_refused() -> None:
    code = DCTCode(8, 6)
    with pytest.raises(TooManyFaults, match="only 5 answers"):
        code.decode(np.zeros((8, 1)), [0, 1, 2], tolerance=0.1)


def test_honest_misfit_stays_within_the_tail_bound() -> None:
    """h(z) = 1 / (z - 2) is analytic inside the Bernstein ellipse rho = 3 (semi-major 5/3),
    where |h| <= 3; any kept subset's misfit obeys dct_tail_bound."""
    rng = np.random.default_rng(4)
    for length, dimension in ((16, 10), (24, 12), (24, 20)):
        code = DCTCode(length, dimension)
        values = (1 / (code.nodes - 2))[:, None]
        bound = dct_tail_bound(length, dimension, rho=3.0, bound=3.0)
        for _ in range(10):
            kept = sorted(int(i) for i in rng.choice(length, dimension + 3, replace=False))
            assert np.abs(code.residual(values, kept)).max() <= bound


def test_tail_bound_shrinks_with_dimension() -> None:
    bounds = [dct_tail_bound(24, k, rho=2.0, bound=1.0) for k in (8, 12, 16, 20)]
    assert bounds == sorted(bounds, reverse=True)


def test_predict_reproduces_a_codeword() -> None:
    code = DCTCode(12, 5)
    values = _codeword(code, 2, 5)
    np.testing.assert_allclose(code.predict(values, range(7), [9, 11]), values[[9, 11]],
                               atol=1e-9)


@pytest.mark.parametrize(("args", "match"), [
    ((0, 1), "length"), ((5, 0), "dimension"), ((5, 6), "exceeds"), ((True, 1), "length")])
def test_bad_code_shapes_are_refused(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DCTCode(*args)


def test_bad_decode_arguments_are_refused() -> None:
    code = DCTCode(10, 6)
    values = np.zeros((10, 2))
    with pytest.raises(ValueError, match="tolerance"):
        code.decode(values, [], tolerance=-1.0)
    with pytest.raises(ValueError, match="erased position"):
        code.decode(values, [10], tolerance=0.1)
    with pytest.raises(ValueError, match="max_errors"):
        code.decode(values, [], tolerance=0.1, max_errors=-1)
    with pytest.raises(ValueError, match="10 rows"):
        code.decode(np.zeros((9, 2)), [], tolerance=0.1)
    with pytest.raises(ValueError, match="can locate"):
        code.locate(values, [0, 1], 2)
    with pytest.raises(ValueError, match="rho"):
        dct_tail_bound(10, 6, rho=1.0, bound=1.0)
    with pytest.raises(ValueError, match="bound"):
        dct_tail_bound(10, 6, rho=2.0, bound=-1.0)
