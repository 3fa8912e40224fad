"""The layout helpers: bfloat16 widening/narrowing done on the bits must equal torch's exact
conversions, and rows_last must list each row in logical row-major order (C3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repops.kernels._rows import narrow, normalize_dims, rows_last, widen


def test_bf16_widen_equals_torch_on_every_bit_pattern() -> None:
    every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    got = torch.from_numpy(widen(every, torch.float32))
    want = every.to(torch.float32)
    same = got.view(torch.int32) == want.view(torch.int32)
    assert bool((same | (torch.isnan(got) & torch.isnan(want))).all())


def test_bf16_narrow_equals_torch_rounding() -> None:
    g = torch.Generator().manual_seed(0)
    bits = torch.randint(-(2**31), 2**31 - 1, (200_000,), generator=g, dtype=torch.int64)
    x = bits.to(torch.int32).view(torch.float32)
    # Exact ties (low 16 bits 0x8000) with even and odd kept parts, near-overflow, subnormals.
    ties = (torch.arange(0, 4000, dtype=torch.int32) << 16 | 0x8000).view(torch.float32)
    special = torch.tensor(
        [
            0.0,
            -0.0,
            float("inf"),
            float("-inf"),
            float("nan"),
            3.3895314e38,
            3.4028235e38,
            1e-40,
            -1e-45,
            1.0,
            -2.5,
        ]
    )
    x = torch.cat([x, ties, -ties, special])
    got = narrow(x.numpy(), torch.bfloat16)
    want = x.to(torch.bfloat16)
    assert got.dtype == torch.bfloat16 and got.shape == want.shape
    # NaN payloads are unspecified (C6; torch's own vector and scalar paths disagree on them):
    # repops writes the quiet NaN 0x7FC0, every other pattern must equal torch's rounding.
    nan = torch.isnan(x)
    assert torch.equal(got.view(torch.int16)[~nan], want.view(torch.int16)[~nan])
    assert bool((got.view(torch.int16)[nan] == 0x7FC0).all())


def test_narrow_other_dtypes_use_torch_rounding() -> None:
    x = torch.randn(1000) * 1e3
    assert torch.equal(narrow(x.numpy(), torch.float16), x.to(torch.float16))
    assert narrow(np.zeros((2, 0), np.float32), torch.bfloat16).shape == (2, 0)


def test_rows_last_is_logical_row_major() -> None:
    x = torch.arange(24.0).reshape(2, 3, 4)
    arr, kept = rows_last(x.permute(2, 0, 1), [1, 2], torch.float32)  # logical shape (4, 2, 3)
    assert kept == [4]
    assert arr.tolist()[1] == [1.0, 5.0, 9.0, 13.0, 17.0, 21.0]
    bf = x.to(torch.bfloat16).transpose(0, 2)
    arr_bf, _ = rows_last(bf, [0], torch.float32)
    assert np.array_equal(arr_bf, x.transpose(0, 2).permute(1, 2, 0).reshape(6, 4).numpy())


def test_normalize_dims_errors() -> None:
    assert normalize_dims(None, 3) == [0, 1, 2] and normalize_dims([], 2) == [0, 1]
    assert normalize_dims([-1, 0], 3) == [0, 2]
    with pytest.raises(ValueError, match="out of range"):
        normalize_dims([3], 3)
    with pytest.raises(ValueError, match="more than once"):
        normalize_dims([0, -3], 3)
    with pytest.raises(ValueError, match="int"):
        normalize_dims([True], 3)
