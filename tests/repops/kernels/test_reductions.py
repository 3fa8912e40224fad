"""sum / mean / var / std / vector norm kernels against the spec reference, bit for bit.

The reference (repops/reference/reductions.py) gathers rows with np.ndindex straight from the
(possibly strided) array, so layout handling in the kernels is checked too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repops.errors import UnsupportedInputError
from repops.kernels import reductions as R
from repops.reference import reductions as ref

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]  # conftest fixture type
OnAllPaths = Callable[[Callable[[], Any]], list[Any]]  # conftest fixture type
WideRandn = Callable[..., torch.Tensor]  # conftest fixture type

SIZES = [1, 3, 15, 16, 17, 33, 257]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@pytest.fixture(scope="session")
def data(wide_randn: WideRandn) -> WideRandn:
    """``data(shape, dtype, seed=0)``: the conftest builder with the wide spread of 3."""
    return functools.partial(wide_randn, spread=3.0)


def compute(t: torch.Tensor) -> np.ndarray:
    ct = torch.float64 if t.dtype == torch.float64 else torch.float32
    return t.to(ct).numpy()


def rounded(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.array(a)).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_sum_mean_match_reference(
    n: int, dtype: torch.dtype, same_bits_or_nan: SameBits, data: WideRandn
) -> None:
    x = data((3, n), dtype, seed=n)
    xc = compute(x)
    assert same_bits_or_nan(R.sum_dim(x, [1]), rounded(ref.sum_reference(xc, [1]), dtype))
    assert same_bits_or_nan(
        R.mean_dim(x, [-1], True), rounded(ref.mean_reference(xc, [1], True), dtype)
    )
    assert same_bits_or_nan(R.sum_all(x), rounded(ref.sum_reference(xc, None), dtype))
    assert same_bits_or_nan(R.mean_all(x), rounded(ref.mean_reference(xc, None), dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize(("shape", "dims"), [
    ((33, 70), [0]), ((5, 7, 130), [0, 1]), ((16, 64), [0]), ((0, 9), [0]), ((3, 2, 0), [0]),
])
def test_sums_over_leading_dims_match_reference(
    shape: tuple[int, ...], dims: list[int], dtype: torch.dtype, same_bits_or_nan: SameBits,
    on_all_paths: OnAllPaths, data: WideRandn,
) -> None:
    # The column kernel (bias gradients): lanes run down the columns, with tails of rows
    # (not a multiple of 16) and of column blocks (not a multiple of 64), empty rows (-0.0).
    x = data(shape, dtype, seed=len(shape))
    want = rounded(ref.sum_reference(compute(x), dims), dtype)
    for got in on_all_paths(lambda: R.sum_dim(x, dims)):
        assert same_bits_or_nan(got, want)
    keep = R.sum_dim(x, dims, True)
    assert keep.shape == x.sum(dims, keepdim=True).shape
    assert same_bits_or_nan(keep.reshape(want.shape), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 16, 17, 257])
@pytest.mark.parametrize("correction", [0, 1, 2.5])
def test_var_std_match_reference(
    n: int, dtype: torch.dtype, correction: float, same_bits_or_nan: SameBits, data: WideRandn
) -> None:
    x = data((4, n), dtype, seed=n + 1)
    xc = compute(x)
    v, m = ref.var_reference(xc, [1], correction)
    s, _ = ref.var_reference(xc, [1], correction, take_sqrt=True)
    assert same_bits_or_nan(R.var_correction(x, [1], correction=correction), rounded(v, dtype))
    assert same_bits_or_nan(R.std_correction(x, [1], correction=correction), rounded(s, dtype))
    vm = R.var_mean_correction(x, [1], correction=correction)
    assert same_bits_or_nan(vm[0], rounded(v, dtype))
    assert same_bits_or_nan(vm[1], rounded(m, dtype))
    sm = R.std_mean_correction(x, [1], correction=correction)
    assert same_bits_or_nan(sm[0], rounded(s, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ord", [2, 1, math.inf, -math.inf, 0])
@pytest.mark.parametrize("n", [1, 17, 257])
def test_vector_norm_matches_reference(
    n: int, ord: float, dtype: torch.dtype, same_bits_or_nan: SameBits, data: WideRandn
) -> None:
    x = data((3, n), dtype, seed=2 * n)
    x[0, 0] = 0.0
    got = R.linalg_vector_norm(x, ord, [1])
    want = rounded(ref.vector_norm_reference(compute(x), ord, [1]), dtype)
    assert same_bits_or_nan(got, want)


def test_float64_follows_the_same_order(same_bits_or_nan: SameBits, data: WideRandn) -> None:
    x = data((2, 35), torch.float64, seed=5)
    xc = x.numpy()
    assert same_bits_or_nan(R.sum_dim(x, [1]), torch.from_numpy(ref.sum_reference(xc, [1])))
    v, _ = ref.var_reference(xc, [1], 1.0)
    assert same_bits_or_nan(R.var_correction(x, [1]), torch.from_numpy(v))
    assert same_bits_or_nan(
        R.linalg_vector_norm(x, 2, [1]), torch.from_numpy(ref.vector_norm_reference(xc, 2, [1]))
    )


def test_lane_order_is_not_a_sequential_sum(data: WideRandn) -> None:
    # LSUM differs from a left-to-right sum on wide-range data: proves the lane order is used.
    x = data((64, 100), torch.float32, seed=9)
    got = R.sum_dim(x, [1]).numpy()
    seq = np.zeros(64, np.float32)
    xs = x.numpy()
    for i in range(64):
        s = np.float32(-0.0)
        for v in xs[i]:
            s = s + v
        seq[i] = s
    assert not np.array_equal(got.view(np.int32), seq.view(np.int32))


def test_thread_count_does_not_change_bits(
    same_bits_or_nan: SameBits, on_all_paths: OnAllPaths, data: WideRandn
) -> None:
    x = data((37, 129), torch.float32, seed=3)
    xi = torch.randint(-9, 9, (5, 7))

    def run() -> list[torch.Tensor]:
        return [
            R.sum_dim(x, [1]),
            R.mean_dim(x, [0]),
            R.var_correction(x, [1]),
            *[R.linalg_vector_norm(x, p, [1]) for p in (2, 1, math.inf, 0)],
            R.sum_all(xi),
        ]

    first, *rest = on_all_paths(run)
    for other in rest:
        for a, b in zip(first, other, strict=True):
            assert same_bits_or_nan(a, b)


@pytest.mark.parametrize("rows", [1, 7, 64])
def test_batch_size_and_row_position_do_not_change_bits(
    rows: int, same_bits_or_nan: SameBits, data: WideRandn
) -> None:
    base = data((64, 45), torch.float32, seed=11)
    want = R.var_correction(base, [1])
    sub = base[:rows]
    assert same_bits_or_nan(R.var_correction(sub, [1]), want[:rows])
    perm = torch.randperm(rows, generator=torch.Generator().manual_seed(rows))
    assert same_bits_or_nan(R.sum_dim(sub[perm], [1]), R.sum_dim(base, [1])[:rows][perm])


def test_layout_does_not_change_bits(same_bits_or_nan: SameBits, data: WideRandn) -> None:
    x = data((6, 40), torch.float32, seed=4)
    xt = x.t().contiguous().t()  # same values, column-major storage
    strided = torch.zeros(12, 80)[::2, ::2]
    strided.copy_(x)
    for y in (xt, strided):
        assert not y.is_contiguous()
        assert same_bits_or_nan(R.sum_dim(y, [1]), R.sum_dim(x, [1]))
        assert same_bits_or_nan(R.linalg_vector_norm(y, 2, [1]), R.linalg_vector_norm(x, 2, [1]))
    # C3: reducing dim 0 of x^T equals reducing dim 1 of x.
    assert same_bits_or_nan(R.sum_dim(x.t(), [0]), R.sum_dim(x, [1]))
    assert same_bits_or_nan(R.std_correction(x.t(), [0]), R.std_correction(x, [1]))


def test_multi_dim_reduction_uses_row_major_order(
    same_bits_or_nan: SameBits, data: WideRandn
) -> None:
    x = data((3, 5, 7), torch.float32, seed=6)
    xc = x.numpy()
    assert same_bits_or_nan(R.sum_dim(x, [0, 2]), torch.from_numpy(ref.sum_reference(xc, [0, 2])))
    # The permuted tensor reduced over the permuted dims gives the same bits (logical order).
    assert same_bits_or_nan(R.sum_dim(x.permute(1, 0, 2), [1, 2]), R.sum_dim(x, [0, 2]))


def test_close_to_torch() -> None:
    # Tolerance: both are sums of n terms in different orders; relative error ~ n/16 * 2^-24.
    x = torch.randn(8, 300, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(R.sum_dim(x, [1]), x.sum(1), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(R.mean_all(x), x.mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(R.var_correction(x, [0], correction=0), x.var(0, correction=0))
    torch.testing.assert_close(R.std_correction(x), x.std())
    torch.testing.assert_close(R.linalg_vector_norm(x, 2, [1], True), x.norm(dim=1, keepdim=True))
    torch.testing.assert_close(R.linalg_vector_norm(x, 1), x.norm(p=1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(R.sum_all(x.half()), x.half().sum(), rtol=2e-3, atol=1e-2)
    assert R.sum_dim(x, [1], dtype=torch.float64).dtype == torch.float64


def test_integer_sum_is_exact_int64() -> None:
    x = torch.randint(-1000, 1000, (5, 33), dtype=torch.int32)
    got = R.sum_dim(x, [1])
    assert got.dtype == torch.int64
    assert torch.equal(got, x.sum(1))
    assert torch.equal(R.sum_all(x > 0), (x > 0).sum())


def test_empty_sum_is_negative_zero_and_mean_nan() -> None:
    x = torch.zeros(3, 0)
    s = R.sum_dim(x, [1])
    assert torch.equal(s, torch.zeros(3)) and bool(torch.signbit(s).all())
    assert bool(torch.isnan(R.mean_dim(x, [1])).all())


def test_bad_inputs_raise_clear_errors() -> None:
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="out of range"):
        R.sum_dim(x, [2])
    with pytest.raises(ValueError, match="more than once"):
        R.sum_dim(x, [1, -1])
    with pytest.raises(UnsupportedInputError, match="int64"):
        R.mean_dim(torch.ones(3, dtype=torch.int64), [0])
    with pytest.raises(UnsupportedInputError, match="ord=3"):
        R.linalg_vector_norm(x, 3)
    with pytest.raises(UnsupportedInputError, match="complex"):
        R.sum_all(torch.ones(2, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"torch\.Tensor"):
        R.sum_all([1.0, 2.0])  # type: ignore[arg-type]


def test_aten_table_names_real_overloads() -> None:
    for name, fn in R.ATEN_KERNELS.items():
        ns, op, overload = name.split(".")
        assert ns == "aten" and callable(fn)
        getattr(getattr(torch.ops.aten, op), overload)  # raises if the overload does not exist


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    data_seed=st.integers(0, 2**16),
    pick=st.integers(0, 7),
    keepdim=st.booleans(),
)
def test_random_shapes_and_dims_match_reference(
    shape: list[int],
    data_seed: int,
    pick: int,
    keepdim: bool,
    same_bits_or_nan: SameBits,
    data: WideRandn,
) -> None:
    x = data(tuple(shape), torch.float32, seed=data_seed)
    dims = [d for d in range(len(shape)) if (pick >> d) & 1] or None
    xc = x.numpy()
    want = torch.from_numpy(np.array(ref.sum_reference(xc, dims, keepdim)))
    assert same_bits_or_nan(R.sum_dim(x, dims, keepdim), want)
    v, _ = ref.var_reference(xc, dims, 1.0, keepdim)
    assert same_bits_or_nan(
        R.var_correction(x, dims, keepdim=keepdim), torch.from_numpy(np.array(v))
    )
