"""The compiled reductions over sorted lanes give the bits of the column-wise steps they
replace (NaN, infinities, signed zeros, ties and odd tails included), and MeaMed no longer
lets a value outside its window reach the result."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import verde.robust as R
from verde.robust import coordinate
from verde.robust.coordinate import meamed_sorted
from verde.robust.sorted_lanes import (
    meamed_lanes,
    meamed_rows,
    trimmed_sum_lanes,
    trimmed_sum_rows,
)

CASES = [(1, 0), (2, 0), (3, 1), (10, 2), (10, 4), (25, 5), (25, 12), (100, 20), (100, 49)]


def _hostile_lanes(n: int, f: int, dtype: type, cols: int = 1037) -> np.ndarray:
    """Sorted lanes (cols, n) with NaN, +-inf, signed zeros, ties and a skewed spread; cols
    is neither a multiple of 8 nor of 512, so every kernel's tail runs."""
    rng = np.random.default_rng(n * 100 + f)
    s = rng.standard_normal((cols, n)).astype(dtype)
    s[::7, -1] = np.nan
    s[::11, 0] = -np.inf
    s[::13, :] = 0.0
    s[::17, :] = 1.0
    s[::19, :] = -0.0
    s[::23, : min(2, n)] = np.inf
    s[::29, n - f - 1:] = np.nan  # more NaN than f: the result may be NaN, but the same NaN
    s[::31] = np.round(s[::31])
    s[::37] = np.exp(5 * rng.standard_normal(s[::37].shape)).astype(dtype)
    return np.sort(s, axis=1)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True)
                and np.array_equal(np.signbit(a), np.signbit(b)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "f"), CASES)
def test_meamed_kernels_give_the_bits_of_the_columnwise_steps(n: int, f: int,
                                                              dtype: type) -> None:
    s = _hostile_lanes(n, f, dtype)
    keep = n - f
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf in the reference
        reference = meamed_sorted(s, n, keep)
    via_torch = meamed_sorted(torch.from_numpy(s), n, keep).numpy()
    assert _same_bits(meamed_lanes(s, keep), reference)
    assert _same_bits(meamed_rows(np.ascontiguousarray(s.T), keep), reference)
    assert _same_bits(meamed_lanes(np.asfortranarray(s), keep), reference)  # any layout
    assert _same_bits(via_torch, reference)


def test_meamed_kernels_are_compared_on_values_that_tell_them_apart() -> None:
    # Negative control: a different keep gives other bits, so the equalities above are not
    # vacuous on this data.
    s = _hostile_lanes(25, 5, np.float32)
    assert not _same_bits(meamed_lanes(s, 20), meamed_lanes(s, 21))
    assert not _same_bits(meamed_rows(np.ascontiguousarray(s.T), 20), meamed_sorted(s, 25, 19))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "f"), [c for c in CASES if c[1] > 0])
def test_trimmed_sums_add_the_kept_values_in_ascending_order(n: int, f: int,
                                                             dtype: type) -> None:
    s = _hostile_lanes(n, f, dtype, cols=203)
    expected = np.empty(s.shape[0])
    with np.errstate(invalid="ignore"):
        for c in range(s.shape[0]):
            total = np.float64(s[c, f])
            for k in range(f + 1, n - f):
                total = total + np.float64(s[c, k])
            expected[c] = total
    assert _same_bits(trimmed_sum_lanes(s, f, n - f), expected)
    assert _same_bits(trimmed_sum_rows(np.ascontiguousarray(s.T), f, n - f), expected)


def test_trimmed_sum_order_is_visible_in_the_bits() -> None:
    # Negative control: the order matters on this data. Sixteen 2^-53 added first make
    # 2^-49, which survives the 1.0 added last; added after the 1.0 each would be lost.
    lane = np.array([[2.0**-53] * 16 + [1.0]], dtype=np.float64)
    descending = np.float64(1.0)
    for _ in range(16):
        descending = descending + np.float64(2.0**-53)
    assert descending == 1.0
    assert trimmed_sum_lanes(lane, 0, 17)[0] == 1.0 + 2.0**-49


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("n", [7, 40])  # the sorting network and the lane sort
def test_meamed_keeps_a_minus_infinity_outside_its_window_out(n: int,
                                                              deterministic: bool) -> None:
    # A Byzantine worker's -inf sorts first and is outside every window of keep = n - 1
    # values but the first. It used to reach the sum as (-inf * 0.0) = NaN, and a Flower
    # round with a NaN aggregate is not applied: one client could stall MeaMed.
    x = np.random.default_rng(n).standard_normal((n, 3000)).astype(np.float32)
    x[0, 11] = -np.inf
    x[1, 12] = np.inf
    out = R.meamed(x, 1, deterministic=deterministic)
    honest = R.meamed(np.delete(x, 0, axis=0)[:, 11:12], 0)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[11], honest[0], rtol=1e-6)


def test_meamed_is_nan_when_more_than_f_values_are_nan() -> None:
    # Negative: beyond f, a NaN is inside every window and the result says so.
    x = np.random.default_rng(0).standard_normal((7, 50)).astype(np.float32)
    x[:2, 3] = np.nan
    out = R.meamed(x, 1)
    assert np.isnan(out[3]) and np.isfinite(np.delete(out, 3)).all()


@pytest.mark.parametrize("rule", ["trimmed_mean", "meamed"])
def test_numpy_and_deterministic_paths_agree_across_chunks(rule: str,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    # Chunk boundaries and the compiled kernels change nothing: small chunks, the same bits.
    x = np.random.default_rng(3).standard_normal((30, 5000)).astype(np.float32)
    whole = getattr(R, rule)(x, 6)
    monkeypatch.setattr(coordinate, "SORTED_CHUNK", 333)
    assert np.array_equal(getattr(R, rule)(x, 6), whole)
    deterministic = getattr(R, rule)(x, 6, deterministic=True)
    np.testing.assert_allclose(deterministic, whole, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rule", ["median", "trimmed_mean", "meamed"])
@pytest.mark.parametrize("n", [10, 30])  # the sorting network and the lane sort
def test_column_major_inputs_are_not_sorted_in_place(rule: str, n: int) -> None:
    # A (d, n) matrix of column gradients passed as its transpose is column-major: the lane
    # sort once sorted such an array (or a transposed tensor's memory) in place.
    columns = np.random.default_rng(n).standard_normal((400, n)).astype(np.float32)
    x, before = columns.T, columns.copy()
    t = torch.from_numpy(columns.copy()).T
    t_before = t.clone()
    got = getattr(R, rule)(x, 2)
    assert np.array_equal(columns, before)
    assert np.array_equal(got, getattr(R, rule)(np.ascontiguousarray(x), 2))
    getattr(R, rule)(t, 2)
    assert torch.equal(t, t_before)
