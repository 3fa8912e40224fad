"""Fault-tolerant Strassen-like matmul: 16 nodes, any single fault located and corrected."""

import itertools

import numpy as np
import pytest
import torch

from verde.coding import FaultTolerantStrassen, ReplicatedStrassen, TooManyFaults
from verde.coding import strassen_checks as data
from verde.coding.strassen_search import locatable


def _matrices(seed: int, shape: tuple[int, int, int] = (6, 8, 4)) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    rng = np.random.default_rng(seed)
    m, k, n = shape
    return rng.standard_normal((m, k)), rng.standard_normal((k, n))


def test_node_counts_are_16_against_21() -> None:
    assert FaultTolerantStrassen().n_nodes == 16
    assert FaultTolerantStrassen(with_psmms=False).n_nodes == 14
    assert ReplicatedStrassen(3).n_nodes == 21
    assert ReplicatedStrassen(2).n_nodes == 14
    assert pytest.approx(0.238, abs=1e-3) == 1 - 16 / 21  # "around 24% fewer nodes"


def test_honest_run_decodes_without_alarm() -> None:
    scheme = FaultTolerantStrassen()
    for seed in range(3):
        a, b = _matrices(seed)
        out = scheme.decode(a, b, scheme.compute_all(a, b))
        assert out.faulty == () and out.missing == ()
        assert out.checks == 6
        np.testing.assert_allclose(out.product, a @ b, atol=1e-12)


def test_integer_inputs_decode_exactly() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(-5, 6, (4, 6)).astype(np.float64)
    b = rng.integers(-5, 6, (6, 4)).astype(np.float64)
    scheme = FaultTolerantStrassen()
    results = scheme.compute_all(a, b)
    results[4] = results[4] + 1.0
    out = scheme.decode(a, b, results)
    assert out.faulty == (4,)
    assert np.array_equal(out.product, a @ b)


def test_float32_rounding_never_raises_an_alarm() -> None:
    """The rigorous rounding bound: honest float32 nodes of a larger product pass."""
    scheme = FaultTolerantStrassen()
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        a = torch.randn(64, 96, generator=gen) * 10
        b = torch.randn(96, 32, generator=gen)
        out = scheme.decode(a, b, scheme.compute_all(a, b))
        assert out.faulty == ()
        assert out.product.dtype == torch.float32
        torch.testing.assert_close(out.product, a @ b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("node", range(16))
def test_any_single_faulty_node_is_located_and_corrected(node: int) -> None:
    scheme = FaultTolerantStrassen()
    a, b = _matrices(node)
    rng = np.random.default_rng(100 + node)
    for error in (rng.standard_normal((3, 2)), np.eye(3, 2)[:, :1] @ np.ones((1, 2)) * 1e-3):
        results = scheme.compute_all(a, b)
        results[node] = results[node] + error
        out = scheme.decode(a, b, results)
        assert out.faulty == (node,)
        np.testing.assert_allclose(out.product, a @ b, atol=1e-12)


def test_a_single_changed_element_is_located() -> None:
    scheme = FaultTolerantStrassen()
    a, b = _matrices(7)
    for node in range(16):
        results = scheme.compute_all(a, b)
        results[node] = results[node].copy()
        results[node][1, 0] += 1e-6
        assert scheme.decode(a, b, results).faulty == (node,)


def test_two_faulty_nodes_decode_exactly_when_the_search_says_they_are_located() -> None:
    scheme = FaultTolerantStrassen()
    relations = np.array(data.CHECK_RELATIONS)
    a, b = _matrices(11)
    rng = np.random.default_rng(12)
    located = 0
    for pair in itertools.combinations(range(16), 2):
        results = scheme.compute_all(a, b)
        for node in pair:
            results[node] = results[node] + rng.standard_normal((3, 2))
        if locatable(relations, pair):
            out = scheme.decode(a, b, results)
            assert out.faulty == pair
            np.testing.assert_allclose(out.product, a @ b, atol=1e-10)
            located += 1
        else:
            with pytest.raises(TooManyFaults):
                scheme.decode(a, b, results)
    assert located == data.SCORE["pairs"]


def test_missing_nodes_are_erasures() -> None:
    scheme = FaultTolerantStrassen()
    a, b = _matrices(13)
    honest = scheme.compute_all(a, b)
    for gone in itertools.combinations(range(16), 3):
        results = {i: v for i, v in honest.items() if i not in gone}
        try:
            out = scheme.decode(a, b, results)
        except TooManyFaults:
            continue
        assert out.missing == gone and out.faulty == ()
        np.testing.assert_allclose(out.product, a @ b, atol=1e-10)


def test_a_fault_next_to_a_missing_node_is_still_corrected() -> None:
    scheme = FaultTolerantStrassen()
    a, b = _matrices(14)
    honest = scheme.compute_all(a, b)
    corrected = 0
    for gone, bad in itertools.permutations(range(16), 2):
        results = {i: v for i, v in honest.items() if i != gone}
        results[bad] = results[bad] + 1.0
        try:
            out = scheme.decode(a, b, results)
        except TooManyFaults:
            continue
        assert out.faulty == (bad,)
        np.testing.assert_allclose(out.product, a @ b, atol=1e-10)
        corrected += 1
    assert corrected > 200  # of 240 (missing, faulty) pairs


def test_without_psmms_the_14_nodes_still_check() -> None:
    scheme = FaultTolerantStrassen(with_psmms=False)
    a, b = _matrices(15)
    results = scheme.compute_all(a, b)
    results[2] = results[2] + 0.5
    out = scheme.decode(a, b, results)
    assert out.checks == 4 and out.faulty == (2,)
    np.testing.assert_allclose(out.product, a @ b, atol=1e-12)


def test_replication_votes_out_one_bad_copy_and_refuses_two() -> None:
    three = ReplicatedStrassen(3)
    a, b = _matrices(16)
    results = three.compute_all(a, b)
    results[9] = results[9] + 1.0
    out = three.decode(a, b, results)
    assert out.faulty == (9,)
    np.testing.assert_allclose(out.product, a @ b, atol=1e-12)
    results[2] = results[2] - 1.0  # copies 1 and 2 of sub-product 3 are both wrong
    with pytest.raises(TooManyFaults, match="sub-product 3 disagree"):
        three.decode(a, b, results)
    two = ReplicatedStrassen(2)
    results = two.compute_all(a, b)
    results[3] = results[3] + 1.0
    with pytest.raises(TooManyFaults, match="disagree"):
        two.decode(a, b, results)


def test_unchecked_results_are_refused_unless_allowed() -> None:
    a, b = _matrices(17)
    scheme = FaultTolerantStrassen()
    honest = scheme.compute_all(a, b)
    only_strassen = {i: honest[i] for i in range(7)}
    with pytest.raises(TooManyFaults, match="no check relation"):
        scheme.decode(a, b, only_strassen)
    loose = FaultTolerantStrassen(allow_unchecked=True)
    out = loose.decode(a, b, only_strassen)
    assert out.checks == 0
    np.testing.assert_allclose(out.product, a @ b, atol=1e-12)


def test_calibrated_tolerance_catches_what_the_rigorous_bound_lets_pass() -> None:
    """float32, inner dimension 128: honest rounding sits far below the worst-case bound, so a
    deviation of 1e-3 (outputs are ~10 in size) passes the rigorous check; calibrating the
    allowance on another honest product of the same kind catches and locates it."""
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(64, 256, generator=gen), torch.randn(256, 64, generator=gen)
    a2, b2 = torch.randn(64, 256, generator=gen), torch.randn(256, 64, generator=gen)
    rigorous = FaultTolerantStrassen()
    margin = rigorous.honest_margin(a2, b2, rigorous.compute_all(a2, b2))
    assert 0 < margin < 0.1
    calibrated = FaultTolerantStrassen(tolerance_scale=10 * margin)
    honest = calibrated.compute_all(a, b)
    assert calibrated.decode(a, b, honest).faulty == ()
    assert FaultTolerantStrassen(rounding="probabilistic").decode(a, b, honest).faulty == ()
    for node in (2, 9, 15):
        results = dict(honest)
        results[node] = results[node].clone()
        results[node][5, 6] += 1e-3
        assert rigorous.decode(a, b, results).faulty == ()
        out = calibrated.decode(a, b, results)
        assert out.faulty == (node,)
        torch.testing.assert_close(out.product, a @ b, rtol=1e-4, atol=1e-4)


def test_bad_arguments_are_refused() -> None:
    a, b = _matrices(18)
    scheme = FaultTolerantStrassen()
    honest = scheme.compute_all(a, b)
    with pytest.raises(ValueError, match="node must be an int"):
        scheme.decode(a, b, {**honest, 16: honest[0]})
    with pytest.raises(ValueError, match="shape"):
        scheme.decode(a, b, {**honest, 3: np.zeros((2, 2))})
    with pytest.raises(TooManyFaults, match="no node answered"):
        scheme.decode(a, b, {})
    with pytest.raises(ValueError, match="tolerance_scale"):
        FaultTolerantStrassen(tolerance_scale=0.0)
    with pytest.raises(ValueError, match="with_psmms"):
        FaultTolerantStrassen(with_psmms=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="copies"):
        ReplicatedStrassen(0)
    with pytest.raises(ValueError, match="rounding"):
        FaultTolerantStrassen(rounding="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rounding"):
        ReplicatedStrassen(rounding="loose")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node must be an int"):
        scheme.operands(a, b, -1)
    with pytest.raises(ValueError, match="even dimensions"):
        scheme.decode(np.zeros((3, 4)), np.zeros((4, 2)), honest)
