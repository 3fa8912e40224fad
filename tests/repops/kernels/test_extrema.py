"""max / min / argmax / argmin / amax / amin: ties, NaN, signed zeros, layouts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from repops.errors import UnsupportedInputError
from repops.kernels import extrema as E
from repops.reference import reductions as ref

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]  # conftest fixture type
OnAllPaths = Callable[[Callable[[], Any]], list[Any]]  # conftest fixture type


def tied(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Few distinct values: many ties, both signed zeros.
    vals = torch.tensor([-0.0, 0.0, 1.0, -1.0, 2.0, 2.0])
    return vals[torch.randint(0, len(vals), shape, generator=g)].to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("n", [1, 3, 16, 17, 33])
@pytest.mark.parametrize("largest", [True, False])
def test_select_matches_reference(
    n: int, dtype: torch.dtype, largest: bool, same_bits_or_nan: SameBits
) -> None:
    x = tied((5, n), dtype, seed=n)
    if n > 3:
        x[1, 2] = float("nan")
        x[1, n - 1] = float("nan")
    xc = x.to(torch.float64).numpy()
    vals, idx = ref.select_reference(xc, [1], largest)
    fn = E.max_dim if largest else E.min_dim
    got_v, got_i = fn(x, 1)
    assert torch.equal(got_i, torch.from_numpy(idx))
    assert same_bits_or_nan(got_v, torch.from_numpy(vals).to(dtype))
    arg = E.argmax if largest else E.argmin
    assert torch.equal(arg(x, 1), torch.from_numpy(idx))
    am = E.amax if largest else E.amin
    assert same_bits_or_nan(am(x, [1]), torch.from_numpy(vals).to(dtype))


def test_first_index_wins_and_signed_zero_is_the_first_one() -> None:
    x = torch.tensor([[-0.0, 0.0, -1.0], [0.0, -0.0, -1.0], [3.0, -5.0, 3.0]])
    v, i = E.max_dim(x, 1)
    assert i.tolist() == [0, 0, 0]
    assert torch.signbit(v).tolist() == [True, False, False]
    v, i = E.min_dim(x, 0)
    assert i.tolist() == [0, 2, 0]


def test_nan_wins_at_its_first_index() -> None:
    x = torch.tensor([1.0, float("nan"), 5.0, float("nan")])
    assert int(E.argmax(x)) == 1 and int(E.argmin(x)) == 1
    assert bool(torch.isnan(E.max_all(x))) and bool(torch.isnan(E.amin(x)))


def test_matches_torch_on_distinct_values() -> None:
    x = torch.randn(4, 9, 6)
    for d in (0, 1, 2, -1):
        v, i = E.max_dim(x, d, True)
        tv, ti = x.max(d, True)
        assert torch.equal(v, tv) and torch.equal(i, ti)
    assert torch.equal(E.argmax(x), x.argmax())
    assert torch.equal(E.argmin(x, None, True), x.argmin(None, True))
    assert torch.equal(E.amax(x, [0, 2]), x.amax((0, 2)))
    assert torch.equal(E.max_all(x), x.max()) and torch.equal(E.min_all(x), x.min())
    xi = torch.randint(-50, 50, (6, 7))
    assert torch.equal(E.max_dim(xi, 1)[0], xi.max(1)[0]) and E.amax(xi).dtype == torch.int64


def test_layout_threads_and_batch_do_not_change_results(
    same_bits_or_nan: SameBits, on_all_paths: OnAllPaths
) -> None:
    x = tied((40, 21), torch.float32, seed=2)
    v, i = E.max_dim(x, 1)
    vt, it = E.max_dim(x.t().contiguous().t(), 1)
    v0, i0 = E.max_dim(x.t(), 0)
    assert same_bits_or_nan(v, vt) and torch.equal(i, it)
    assert same_bits_or_nan(v, v0) and torch.equal(i, i0)
    for v1, i1 in on_all_paths(lambda: E.max_dim(x, 1)):
        assert same_bits_or_nan(v, v1) and torch.equal(i, i1)
    assert torch.equal(E.argmax(x[:7], 1), i[:7])


def test_bad_inputs() -> None:
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="out of range"):
        E.max_dim(x, 2)
    with pytest.raises(ValueError, match="empty"):
        E.amax(torch.zeros(3, 0), [1])
    with pytest.raises(UnsupportedInputError, match="complex"):
        E.max_all(torch.ones(2, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"torch\.Tensor"):
        E.argmax(np.ones(3))  # type: ignore[arg-type]
