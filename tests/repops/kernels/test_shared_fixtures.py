"""The shared bit-comparison and path fixtures (tests/repops/conftest.py, kernels/conftest.py)
must be able to fail: otherwise every test that leans on them proves nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import pytest
import torch

from repops.kernels import _rows

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]  # conftest fixture type
AssertSameBits = Callable[[torch.Tensor, torch.Tensor], None]  # conftest fixture type
OnAllPaths = Callable[[Callable[[], Any]], list[Any]]  # conftest fixture type

QUIET_NAN, OTHER_NAN = 0x7FC00000, 0x7FC00001


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_one_ulp_is_seen_in_every_float_dtype(
    dtype: torch.dtype,
    same_bits: SameBits,
    same_bits_or_nan: SameBits,
    assert_same_bits: AssertSameBits,
) -> None:
    a = torch.linspace(-3, 3, 7).to(dtype)
    b = a.clone()
    b[2] = torch.nextafter(b[2:3], torch.tensor([9.0], dtype=dtype))[0]
    assert same_bits(a, a.clone()) and same_bits_or_nan(a, a.clone())
    assert not same_bits(a, b) and not same_bits_or_nan(a, b)
    assert not same_bits(torch.zeros(1, dtype=dtype), -torch.zeros(1, dtype=dtype))
    assert_same_bits(a, a.clone())
    with pytest.raises(AssertionError):
        assert_same_bits(a, b)


def test_nan_payloads_strict_and_tolerant(same_bits: SameBits, same_bits_or_nan: SameBits) -> None:
    a = torch.tensor([QUIET_NAN], dtype=torch.int32).view(torch.float32)
    b = torch.tensor([OTHER_NAN], dtype=torch.int32).view(torch.float32)
    assert not same_bits(a, b)
    assert same_bits_or_nan(a, b)
    assert not same_bits_or_nan(a, torch.ones(1))


def test_integers_compare_exactly_and_mismatches_raise(
    same_bits: SameBits, same_bits_or_nan: SameBits, assert_same_bits: AssertSameBits
) -> None:
    i = torch.arange(5, dtype=torch.int64)
    assert same_bits(i, i.clone()) and same_bits_or_nan(i, i.clone())
    assert not same_bits(i, i + 1) and not same_bits_or_nan(i, i + 1)
    with pytest.raises(AssertionError):
        assert_same_bits(i, i + 1)
    for check in (same_bits, same_bits_or_nan, assert_same_bits):
        with pytest.raises(AssertionError):
            check(torch.zeros(2), torch.zeros(2, dtype=torch.float64))
        with pytest.raises(AssertionError):
            check(torch.zeros(2), torch.zeros(3))


def test_on_all_paths_runs_three_paths_and_restores_threads(on_all_paths: OnAllPaths) -> None:
    before = numba.get_num_threads()
    seen = on_all_paths(lambda: (_rows.PARALLEL_MIN, numba.get_num_threads()))
    assert len(seen) == 3
    assert seen[0][0] == _rows.PARALLEL_MIN > 0  # the serial path: the threshold untouched
    assert [s[0] for s in seen[1:]] == [0, 0]
    assert seen[1][1] == 1 and seen[2][1] == min(2, numba.config.NUMBA_NUM_THREADS)
    assert numba.get_num_threads() == before


def test_on_all_paths_restores_threads_when_fn_raises(on_all_paths: OnAllPaths) -> None:
    before = numba.get_num_threads()
    calls: list[int] = []

    def fail_on_parallel() -> None:
        calls.append(numba.get_num_threads())
        if len(calls) == 2:
            raise RuntimeError("parallel path failed")

    with pytest.raises(RuntimeError, match="parallel path failed"):
        on_all_paths(fail_on_parallel)
    assert numba.get_num_threads() == before


def test_num_threads_fixture_sets_the_count(num_threads: Callable[[int], None]) -> None:
    num_threads(1)
    assert numba.get_num_threads() == 1
    with pytest.raises(ValueError, match="thread count"):
        num_threads(0)
