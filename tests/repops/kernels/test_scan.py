"""cumsum: sequential running sum, every prefix rounded once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from repops.errors import UnsupportedInputError
from repops.kernels import scan as S
from repops.reference import reductions as ref

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]  # conftest fixture type
OnAllPaths = Callable[[Callable[[], Any]], list[Any]]  # conftest fixture type
WideRandn = Callable[..., torch.Tensor]  # conftest fixture type


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("n", [1, 3, 16, 17, 33])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum_matches_reference(
    n: int, dtype: torch.dtype, dim: int, same_bits: SameBits, wide_randn: WideRandn
) -> None:
    x = wide_randn((4, n), dtype, seed=n)
    ct = torch.float64 if dtype == torch.float64 else torch.float32
    want = torch.from_numpy(ref.cumsum_reference(x.to(ct).numpy(), dim)).to(dtype)
    assert same_bits(S.cumsum(x, dim), want)


def test_cumsum_is_sequential_not_pairwise(wide_randn: WideRandn) -> None:
    x = wide_randn((1, 200), torch.float32, seed=1)
    got = S.cumsum(x, 1).numpy()
    s = np.float32(-0.0)
    for k, v in enumerate(x.numpy()[0]):
        s = s + v
        assert got[0, k].view(np.int32) == s.view(np.int32)


def test_layout_threads_and_dtype_argument(
    same_bits: SameBits, on_all_paths: OnAllPaths, wide_randn: WideRandn
) -> None:
    x = wide_randn((30, 17, 5), torch.float32, seed=2)
    y = S.cumsum(x, 1)
    assert same_bits(S.cumsum(x.permute(2, 1, 0).contiguous().permute(2, 1, 0), 1), y)
    assert same_bits(S.cumsum(x.transpose(0, 1), 0).transpose(0, 1).contiguous(), y)
    for o in on_all_paths(lambda: S.cumsum(x, 1)):
        assert same_bits(o, y)
    assert same_bits(S.cumsum(x[3:9], 1), y[3:9])
    assert S.cumsum(x, 1, dtype=torch.float64).dtype == torch.float64
    torch.testing.assert_close(y, x.cumsum(1), rtol=1e-5, atol=1e-4)


def test_integer_and_bool_promote_to_int64(same_bits: SameBits) -> None:
    xi = torch.randint(-9, 9, (3, 11), dtype=torch.int16)
    assert torch.equal(S.cumsum(xi, 1), xi.cumsum(1))
    assert torch.equal(S.cumsum(xi > 0, 0), (xi > 0).cumsum(0))
    assert same_bits(S.cumsum(torch.tensor(2.5), 0), torch.tensor(2.5))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="out of range"):
        S.cumsum(torch.ones(3), 1)
    with pytest.raises(UnsupportedInputError, match="complex"):
        S.cumsum(torch.ones(3, dtype=torch.complex64), 0)
    with pytest.raises(ValueError, match="must be an int"):
        S.cumsum(torch.ones(3), 0.5)  # type: ignore[arg-type]
