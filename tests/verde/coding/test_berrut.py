"""Berrut interpolation: interpolates, has weights summing to one, and obeys its error bound."""

import itertools

import numpy as np
import pytest

from verde.coding.berrut import (
    berrut_denominator,
    berrut_error_bound,
    berrut_matrix,
    chebyshev_first_kind,
    chebyshev_second_kind,
    lebesgue_function,
    worst_case_berrut_bound,
)


def test_chebyshev_points_are_the_zeros_and_extrema_of_t_n() -> None:
    n = 9
    first = chebyshev_first_kind(n)
    second = chebyshev_second_kind(n)
    assert np.allclose(np.cos(n * np.arccos(first)), 0.0, atol=1e-12)
    assert np.allclose(np.abs(np.cos((n - 1) * np.arccos(second))), 1.0, atol=1e-12)
    assert second[0] == 1.0 and second[-1] == -1.0
    assert np.all(np.diff(first) < 0) and np.all(np.diff(second) < 0)


def test_interpolates_and_rows_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    nodes = rng.permutation(chebyshev_second_kind(11))
    w = berrut_matrix(nodes, nodes)
    assert np.array_equal(w, np.eye(11))
    w = berrut_matrix(nodes, rng.uniform(-1, 1, 40))
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)


def test_denominator_never_vanishes_between_nodes() -> None:
    """Berrut's interpolant has no real poles: |D| stays positive on a fine grid."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        nodes = np.sort(rng.uniform(-1, 1, int(rng.integers(2, 15))))
        grid = np.linspace(-1, 1, 2001)
        assert np.all(berrut_denominator(nodes, grid) > 0)


def test_error_bound_holds_on_random_nodes_and_functions() -> None:
    rng = np.random.default_rng(2)
    worst = 0.0
    for _ in range(300):
        nodes = rng.uniform(-1, 1, int(rng.integers(1, 25)))
        targets = rng.uniform(-1, 1, 30)
        a = rng.uniform(0.5, 6.0)
        h = lambda z, a=a: np.sin(a * z + 1.0)  # noqa: E731 - |h'| <= a, |h''| <= a^2
        err = np.abs(berrut_matrix(nodes, targets) @ h(nodes) - h(targets))
        bound = berrut_error_bound(nodes, targets, m1=a, m2=a * a)
        assert np.all(err <= bound * (1 + 1e-9) + 1e-13)
        worst = max(worst, float((err / bound).max()))
    assert worst > 0.3  # the bound is not vacuous: some cases come close to it


def test_error_bound_is_zero_at_nodes() -> None:
    nodes = chebyshev_first_kind(6)
    assert np.all(berrut_error_bound(nodes, nodes[:3], m1=5.0, m2=5.0) == 0.0)


def test_worst_case_bound_equals_the_maximum_over_enumerated_patterns() -> None:
    nodes = chebyshev_second_kind(10)
    targets = chebyshev_first_kind(3)
    for missing in range(4):
        expected = max(float(berrut_error_bound(np.delete(nodes, list(gone)), targets,
                                                m1=1.5, m2=2.0).max())
                       for gone in itertools.combinations(range(10), missing))
        got = worst_case_berrut_bound(nodes, targets, missing, m1=1.5, m2=2.0)
        assert got == pytest.approx(expected, rel=1e-12)


def test_lebesgue_function_is_at_least_one() -> None:
    nodes = chebyshev_first_kind(12)
    assert np.all(lebesgue_function(nodes, np.linspace(-1, 1, 50)) >= 1 - 1e-12)


@pytest.mark.parametrize(("nodes", "targets", "match"), [
    ([], [0.0], "must not be empty"),
    ([0.1, 0.1], [0.0], "distinct"),
    ([[0.1, 0.2]], [0.0], "1-d"),
    ([0.1, np.nan], [0.0], "finite"),
    ([0.1, 0.2], [np.inf], "targets must be finite"),
])
def test_bad_points_are_refused(nodes: list, targets: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        berrut_matrix(nodes, targets)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_point_counts_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="n must be an int"):
        chebyshev_first_kind(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be an int"):
        chebyshev_second_kind(1 if bad == 0 else bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"m1": -1.0, "m2": 1.0}, "m1"),
    ({"m1": 1.0, "m2": float("nan")}, "m2"),
    ({"m1": "1", "m2": 1.0}, "m1"),
])
def test_bad_derivative_bounds_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        berrut_error_bound([0.0, 0.5], [0.2], **kwargs)


def test_worst_case_refuses_bad_counts_and_too_many_patterns() -> None:
    nodes = chebyshev_second_kind(20)
    with pytest.raises(ValueError, match="missing must be"):
        worst_case_berrut_bound(nodes, [0.0], 20, m1=1, m2=1)
    with pytest.raises(ValueError, match="max_patterns"):
        worst_case_berrut_bound(nodes, [0.0], 5, m1=1, m2=1, max_patterns=100)
