"""softmax / log_softmax / logsumexp and their backwards against the spec reference.

exp and log in the reference are the elementwise engineer's numpy references
(``repops.reference.elementwise.exp_f32_reference`` / ``log_f32_reference``), independent of
the numba ``exp_f32`` / ``log_f32`` the kernels call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from repops.errors import UnsupportedInputError
from repops.kernels import softmax as S
from repops.reference import reductions_nn as ref

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]  # conftest fixture type
OnAllPaths = Callable[[Callable[[], Any]], list[Any]]  # conftest fixture type

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def data(shape: tuple[int, ...], dtype: torch.dtype, seed: int, scale: float = 4.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale).to(dtype)


def rows(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.movedim(dim, -1).reshape(-1, t.shape[dim]).float()


def unrows(a: np.ndarray, like: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    shape = list(like.movedim(dim, -1).shape)
    return torch.from_numpy(a).reshape(shape).movedim(-1, dim).contiguous().to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 15, 16, 17, 33, 257])
def test_forward_matches_reference(n: int, dtype: torch.dtype, same_bits_or_nan: SameBits) -> None:
    x = data((3, n), dtype, seed=n)
    r = rows(x, 1).numpy()
    assert same_bits_or_nan(S.softmax(x, 1, False), unrows(ref.softmax_reference(r), x, 1, dtype))
    assert same_bits_or_nan(
        S.log_softmax(x, -1, False), unrows(ref.log_softmax_reference(r), x, 1, dtype)
    )
    lse = torch.from_numpy(ref.logsumexp_reference(r)).to(dtype)
    assert same_bits_or_nan(S.logsumexp(x, [1]), lse)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 16, 17, 257])
def test_backward_matches_reference(n: int, dtype: torch.dtype, same_bits_or_nan: SameBits) -> None:
    x = data((4, n), torch.float32, seed=n + 7)
    y = S.softmax(x, 1, False).to(dtype)
    ly = S.log_softmax(x, 1, False).to(dtype)
    g = data((4, n), dtype, seed=n + 8, scale=1.0)
    want = ref.softmax_backward_reference(g.float().numpy(), y.float().numpy())
    assert same_bits_or_nan(
        S.softmax_backward_data(g, y, 1, dtype), torch.from_numpy(want).to(dtype)
    )
    want = ref.log_softmax_backward_reference(g.float().numpy(), ly.float().numpy())
    assert same_bits_or_nan(
        S.log_softmax_backward_data(g, ly, -1, dtype), torch.from_numpy(want).to(dtype)
    )


def test_dim0_equals_transposed_last_dim_and_layouts(same_bits_or_nan: SameBits) -> None:
    x = data((19, 6), torch.float32, seed=1)
    a = S.softmax(x, 0, False)
    b = S.softmax(x.t().contiguous(), 1, False).t()
    assert same_bits_or_nan(a, b.contiguous())
    assert same_bits_or_nan(
        S.log_softmax(x.t(), 1, False), S.log_softmax(x.t().contiguous(), 1, False)
    )
    strided = torch.zeros(38, 12)[::2, ::2]
    strided.copy_(x)
    assert same_bits_or_nan(S.softmax(strided, 1, False), S.softmax(x, 1, False))


def test_threads_and_batch_do_not_change_bits(
    same_bits_or_nan: SameBits, on_all_paths: OnAllPaths
) -> None:
    x = data((64, 70), torch.float32, seed=2)
    full = S.log_softmax(x, 1, False)
    g = data((64, 70), torch.float32, seed=3, scale=1.0)

    def run() -> list[torch.Tensor]:
        y = S.softmax(x, 1, False)
        return [
            S.log_softmax(x, 1, False),
            y,
            S.logsumexp(x, [1]),
            S.softmax_backward_data(g, y, 1, torch.float32),
            S.log_softmax_backward_data(g, full, 1, torch.float32),
        ]

    first, *rest = on_all_paths(run)
    assert same_bits_or_nan(first[0], full)
    for other in rest:
        for a, b in zip(first, other, strict=True):
            assert same_bits_or_nan(a, b)
    for m in (1, 7):
        assert same_bits_or_nan(S.log_softmax(x[:m], 1, False), full[:m])
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    assert same_bits_or_nan(S.softmax(x[perm], 1, False), S.softmax(x, 1, False)[perm])


@pytest.mark.parametrize("n", [1, 15, 16, 17, 40, 1000])
def test_row_max_is_the_largest_non_nan_on_every_lane_and_the_tail(n: int) -> None:
    """row_max's 16 lanes and its tail each hold the maximum somewhere, NaNs anywhere (first,
    in a lane, all of them) are skipped, and a zero maximum of either sign gives +0.0."""
    g = np.random.default_rng(n)
    cases = []
    for pos in sorted({0, n // 2, n - 1, min(n - 1, 16 * (n // 16))}):
        row = g.standard_normal(n).astype(np.float32) - np.float32(10.0)
        row[pos] = np.float32(3.5)
        cases.append(row)
        with_nan = row.copy()
        with_nan[g.integers(0, n, size=max(1, n // 4))] = np.nan
        with_nan[0] = np.nan
        with_nan[pos] = np.float32(3.5)
        cases.append(with_nan)
    cases.append(np.full(n, np.nan, dtype=np.float32))
    cases.append(np.full(n, -np.inf, dtype=np.float32))
    negative_zero = np.full(n, -1.0, dtype=np.float32)
    negative_zero[n - 1] = -0.0
    cases.append(negative_zero)
    got = np.array([S.row_max(c) for c in cases], dtype=np.float32)
    want = ref.row_max_reference(np.stack(cases))
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert got[-1] == 0.0 and not np.signbit(got[-1])
    assert got[-2] == -np.inf and got[-3] == -np.inf
    assert (got[:-3] == np.float32(3.5)).all()


def test_special_rows() -> None:
    x = torch.tensor([[float("-inf")] * 3, [1.0, float("nan"), 2.0], [0.0, -0.0, float("-inf")]])
    y = S.softmax(x, 1, False)
    assert bool(torch.isnan(y[0]).all()) and bool(torch.isnan(y[1]).all())
    torch.testing.assert_close(y[2], torch.tensor([0.5, 0.5, 0.0]))
    lse = S.logsumexp(torch.tensor([[float("-inf")] * 2, [float("inf"), 1.0]]), [1])
    assert lse.tolist() == [float("-inf"), float("inf")]


def test_close_to_torch_and_half_to_float() -> None:
    x = data((5, 300), torch.float32, seed=3)
    torch.testing.assert_close(S.softmax(x, 1, False), torch.softmax(x, 1), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(S.log_softmax(x, 0, False), torch.log_softmax(x, 0))
    torch.testing.assert_close(S.logsumexp(x, [1], True), torch.logsumexp(x, 1, True))
    g = torch.randn(5, 300)
    y = torch.softmax(x, 1)
    torch.testing.assert_close(
        S.softmax_backward_data(g, y, 1, torch.float32),
        torch.ops.aten._softmax_backward_data(g, y, 1, torch.float32),
        rtol=1e-5,
        atol=1e-6,
    )
    out = S.softmax(x.half(), 1, True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.softmax(x.half().float(), 1))


def test_bad_inputs() -> None:
    with pytest.raises(UnsupportedInputError, match="float64"):
        S.softmax(torch.randn(3, dtype=torch.float64), 0, False)
    with pytest.raises(ValueError, match="out of range"):
        S.log_softmax(torch.randn(3, 4), 2, False)
    with pytest.raises(ValueError, match="half_to_float"):
        S.softmax(torch.randn(3), 0, True)
    with pytest.raises(ValueError, match="shape"):
        S.softmax_backward_data(torch.randn(3, 4), torch.randn(4, 3), 1, torch.float32)
    with pytest.raises(UnsupportedInputError, match="int64"):
        S.softmax(torch.ones(3, dtype=torch.int64), 0, False)
