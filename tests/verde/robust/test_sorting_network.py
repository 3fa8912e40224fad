"""The sorting network behind the coordinate-wise rules for few workers: it sorts every input
(0-1 principle, exhaustively for small n), agrees with the lane sort, and routes NaN away."""

from __future__ import annotations

import numpy as np
import pytest

import verde.robust as R
from verde.robust import coordinate
from verde.robust.sorting_network import (
    NETWORK_MAX_N,
    network_sorted_rows,
    odd_even_merge_network,
)


@pytest.mark.parametrize("n", range(1, 15))
def test_every_zero_one_input_is_sorted(n: int) -> None:
    # Knuth's 0-1 principle: a comparator network that sorts every 0/1 input sorts every input
    bits = ((np.arange(2**n)[None, :] >> np.arange(n)[:, None]) & 1).astype(np.float32)
    rows = network_sorted_rows(bits)
    assert (np.diff(rows, axis=0) >= 0).all()
    assert np.array_equal(rows.sum(axis=0), bits.sum(axis=0))


@pytest.mark.parametrize("n", [3, 10, 17, NETWORK_MAX_N])
def test_network_equals_a_sort_and_leaves_its_input_alone(n: int) -> None:
    x = np.random.default_rng(n).standard_normal((n, 3001)).astype(np.float32)
    x[:, 7] = 0.0
    x[0, 8], x[1, 8] = np.inf, -np.inf
    before = x.copy()
    assert np.array_equal(network_sorted_rows(x), np.sort(x, axis=0))
    assert np.array_equal(x, before)


def test_a_network_needs_inputs() -> None:
    with pytest.raises(ValueError, match="positive int"):
        odd_even_merge_network(0)
    assert odd_even_merge_network(1) == () and odd_even_merge_network(2) == ((0, 1),)


@pytest.mark.parametrize("rule", ["median", "trimmed_mean", "meamed"])
def test_rules_agree_between_the_network_and_the_lane_sort(
        rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(1).standard_normal((10, 40_000)).astype(np.float32)
    x[3, 5] = np.nan  # a NaN in one block: that block goes through the lane sort
    fn = getattr(R, rule)
    via_network = fn(x, 2) if rule != "median" else fn(x)
    monkeypatch.setattr(coordinate, "NETWORK_MAX_N", 0)
    via_sort = fn(x, 2) if rule != "median" else fn(x)
    np.testing.assert_array_equal(via_network, via_sort)
    assert not np.isnan(via_network[5])  # NaN sorts last and is trimmed or outvoted
