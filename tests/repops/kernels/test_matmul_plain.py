"""The plain-case shortcuts of mm and bmm: the bits and layout of the general path, and None
(the general path decides) for everything they do not take."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import repops
from repops.dispatch.layout import match_vendor_layout
from repops.dispatch.routing import route_for
from repops.kernels import matmul as K
from repops.kernels import matmul_core as core

AssertSameBits = Callable[[torch.Tensor, torch.Tensor], None]  # conftest fixture type
Rand = Callable[..., torch.Tensor]  # conftest fixture type

MM, BMM = torch.ops.aten.mm.default, torch.ops.aten.bmm.default


def _general(func: torch._ops.OpOverload, *args: torch.Tensor) -> torch.Tensor:
    """What the mode's general path returns: the kernel, then the vendor's layout."""
    kernel = K.mm if func is MM else K.bmm
    result: torch.Tensor = match_vendor_layout(func, args, {}, kernel(*args))
    return result


def _check(func: torch._ops.OpOverload, args: tuple[torch.Tensor, ...],
           assert_same_bits: AssertSameBits) -> None:
    plain = K.plain_mm if func is MM else K.plain_bmm
    got = plain(args)
    assert got is not None
    want = _general(func, *args)
    assert_same_bits(got, want)
    assert got.stride() == want.stride() and got.dtype == want.dtype


@pytest.mark.parametrize("threshold", [1 << 62, 0], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_plain_mm_gives_the_general_paths_bits_and_layout(
    threshold: int, dtype: torch.dtype, rand: Rand, assert_same_bits: AssertSameBits,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(core, "SERIAL_BELOW", threshold)
    a, b = rand(70, 90, dtype=dtype, seed=1), rand(90, 40, dtype=dtype, seed=2)
    big = rand(140, 270, dtype=dtype, seed=3)
    cases = [
        (a, b),
        (a.t().contiguous().t(), b),  # column-major A
        (a, b.t().contiguous().t()),  # column-major B (packed)
        (big[::2, ::3], b),  # neither dim contiguous, an offset view
        (a[5:], b[:, 3:]),  # storage offsets
        (rand(1, 90, dtype=dtype, seed=4).expand(30, 90), b),  # a stride-0 row
        (rand(128, 128, dtype=dtype, seed=5), rand(128, 128, dtype=dtype, seed=6)),
        (rand(130, 0, dtype=dtype, seed=7), rand(0, 20, dtype=dtype, seed=8)),  # empty k: +0.0
        (rand(0, 5, dtype=dtype, seed=9), rand(5, 20, dtype=dtype, seed=10)),  # no rows
    ]
    for args in cases:
        _check(MM, args, assert_same_bits)


def test_plain_bmm_gives_the_general_paths_bits_and_layout(
    rand: Rand, assert_same_bits: AssertSameBits
) -> None:
    a, b = rand(6, 37, 24, seed=11), rand(6, 24, 50, seed=12)
    for args in [
        (a, b),
        (a.transpose(1, 2).contiguous().transpose(1, 2), b),
        (a, b.transpose(1, 2).contiguous().transpose(1, 2)),
        (rand(1, 37, 24, seed=13).expand(6, 37, 24), b),  # a broadcast batch (stride 0)
        (a, rand(6, 24, 1, seed=14)),  # one column, several batches: the core
    ]:
        _check(BMM, args, assert_same_bits)


def test_what_the_plain_cases_leave_to_the_general_path(rand: Rand) -> None:
    a, b = rand(8, 6, seed=20), rand(6, 5, seed=21)
    with FakeTensorMode():
        fake_a, fake_b = torch.empty(8, 6), torch.empty(6, 5)
    declined = [
        (a.half(), b.half()),  # widened by the general path
        (a.bfloat16(), b.bfloat16()),
        (a, b.double()),  # mixed dtypes: the general path names them
        (a, b[:, :1]),  # one column: one chain per row
        (a, rand(7, 5, seed=22)),  # inner sizes differ: the general path's error
        (a.unsqueeze(0), b),  # wrong dims
        (a.to("meta"), b.to("meta")),  # shapes only
        (fake_a, fake_b),
        (torch.nn.Parameter(a), b),  # a subclass
        (torch._neg_view(a), b),  # a negation bit to resolve first
        (a.to_sparse(), b),  # not strided
        (a, b, b),  # not mm's arguments
        (a, 3.0),
    ]
    for args in declined:
        assert K.plain_mm(args) is None, args  # type: ignore[arg-type]
    batch = rand(2, 8, 6, seed=23)
    for args in [(batch, rand(3, 6, 5, seed=24)), (batch[0], b), (batch.half(), batch.half())]:
        assert K.plain_bmm(args) is None


def test_the_mode_takes_the_shortcut_and_falls_back(
    rand: Rand, assert_same_bits: AssertSameBits
) -> None:
    assert route_for(MM).plain is K.plain_mm and route_for(BMM).plain is K.plain_bmm
    a, b, c = rand(40, 30, seed=30), rand(30, 20, seed=31), rand(29, 20, seed=32)
    with repops.reproducible():
        plain = torch.mm(a, b)
        widened = torch.mm(a.half(), b.half())  # declined: the general path
        with pytest.raises(repops.errors.RepopsInputError, match="inner sizes differ"):
            torch.ops.aten.mm.default(a, c)  # below torch's own shape check
    assert_same_bits(plain, K.mm(a, b))
    assert_same_bits(widened, K.mm(a.half(), b.half()))
