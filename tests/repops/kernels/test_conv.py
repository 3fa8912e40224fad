"""Convolution (repops/kernels/conv.py) against the spec/linalg.md §3 reference, bit for bit.

Shapes are tiny: the reference builds every element's chain in Python.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from repops.errors import UnsupportedInputError
from repops.kernels.conv import ConvShapeError, convolution, convolution_backward
from repops.reference.linalg import conv2d_backward_reference, conv2d_reference

AssertSameBits = Callable[[torch.Tensor, torch.Tensor], None]  # conftest fixture type
Rand = Callable[..., torch.Tensor]  # conftest fixture type
ConvArgs = Callable[[tuple, torch.dtype], tuple]  # the conv_args fixture below


# (N, C_in, H, W, C_out, KH, KW, stride, padding, dilation, groups)
CASES = [
    (1, 1, 3, 3, 1, 1, 1, [1, 1], [0, 0], [1, 1], 1),
    (2, 3, 5, 4, 2, 3, 3, [1, 1], [1, 1], [1, 1], 1),
    (2, 4, 7, 6, 6, 3, 2, [2, 1], [1, 2], [1, 2], 2),
    (1, 4, 6, 5, 4, 2, 3, [2, 3], [0, 1], [2, 1], 4),  # depthwise
]


@pytest.fixture(scope="session")
def conv_args(rand: Rand) -> ConvArgs:
    """``conv_args(case, dtype)``: seeded input, weight and bias for one CASES row, and its
    stride, padding, dilation and groups."""

    def build(case: tuple, dtype: torch.dtype) -> tuple:
        n, cin, h, w, cout, kh, kw, stride, padding, dilation, groups = case
        x = rand(n, cin, h, w, dtype=dtype, seed=1)
        wt = rand(cout, cin // groups, kh, kw, dtype=dtype, seed=2)
        b = rand(cout, dtype=dtype, seed=3)
        return x, wt, b, stride, padding, dilation, groups

    return build


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_forward_matches_reference(
    case: tuple, dtype: torch.dtype, assert_same_bits: AssertSameBits, conv_args: ConvArgs
) -> None:
    x, w, b, s, p, d, g = conv_args(case, dtype)
    got = convolution(x, w, b, s, p, d, False, [0, 0], g)
    ref = conv2d_reference(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    assert_same_bits(got, ref)
    got_nb = convolution(x, w, None, s, p, d, False, [0, 0], g)
    ref_nb = conv2d_reference(x, w, None, stride=s, padding=p, dilation=d, groups=g)
    assert_same_bits(got_nb, ref_nb)


@pytest.mark.parametrize("case", CASES[1:])
def test_backward_matches_reference(
    case: tuple, rand: Rand, assert_same_bits: AssertSameBits, conv_args: ConvArgs
) -> None:
    x, w, b, s, p, d, g = conv_args(case, torch.float32)
    out = convolution(x, w, b, s, p, d, False, [0, 0], g)
    dy = rand(*out.shape, seed=4)
    gi, gw, gb = convolution_backward(dy, x, w, [w.shape[0]], s, p, d, False, [0, 0], g,
                                      [True, True, True])
    ri, rw, rb = conv2d_backward_reference(dy, x, w, stride=s, padding=p, dilation=d, groups=g)
    assert_same_bits(gi, ri)
    assert_same_bits(gw, rw)
    assert_same_bits(gb, rb)


def test_float64_computes_in_binary64(
    assert_same_bits: AssertSameBits, conv_args: ConvArgs
) -> None:
    x, w, b, s, p, d, g = conv_args((1, 2, 3, 3, 2, 2, 2, [1, 1], [1, 0], [1, 1], 1), torch.float64)
    got = convolution(x, w, b, s, p, d, False, [0, 0], g)
    assert got.dtype == torch.float64
    assert_same_bits(got, conv2d_reference(x, w, b, stride=s, padding=p, dilation=d, groups=g))


def test_output_mask_gives_none(rand: Rand, conv_args: ConvArgs) -> None:
    x, w, _, s, p, d, g = conv_args(CASES[1], torch.float32)
    dy = rand(2, 2, 5, 4, seed=5)
    gi, gw, gb = convolution_backward(dy, x, w, None, s, p, d, False, [0, 0], g,
                                      [False, True, False])
    assert gi is None and gb is None and gw is not None


def test_conv1d_is_conv2d_of_height_one(rand: Rand, assert_same_bits: AssertSameBits) -> None:
    x, w, b = rand(2, 3, 11, seed=6), rand(4, 3, 3, seed=7), rand(4, seed=8)
    got = convolution(x, w, b, [2], [1], [1], False, [0], 1)
    ref = convolution(x[:, :, None], w[:, :, None], b, [1, 2], [0, 1], [1, 1], False, [0, 0], 1)
    assert_same_bits(got, ref[:, :, 0])
    torch.testing.assert_close(got, F.conv1d(x, w, b, 2, 1), rtol=1e-5, atol=1e-5)
    dy = rand(*got.shape, seed=9)
    gi, gw, gb = convolution_backward(dy, x, w, [4], [2], [1], [1], False, [0], 1,
                                      [True, True, True])
    assert gi.shape == x.shape and gw.shape == w.shape and gb.shape == (4,)


def test_close_to_torch_forward_and_backward(rand: Rand, conv_args: ConvArgs) -> None:
    x, w, b, s, p, d, g = conv_args(CASES[2], torch.float32)
    got = convolution(x, w, b, s, p, d, False, [0, 0], g)
    torch.testing.assert_close(got, F.conv2d(x, w, b, s, p, d, g), rtol=1e-5, atol=1e-5)
    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    dy = rand(*got.shape, seed=10)
    F.conv2d(xr, wr, br, s, p, d, g).backward(dy)
    gi, gw, gb = convolution_backward(dy, x, w, [6], s, p, d, False, [0, 0], g, [True] * 3)
    for mine, theirs in ((gi, xr.grad), (gw, wr.grad), (gb, br.grad)):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_threads_batch_and_layout_change_no_bit(
    assert_same_bits: AssertSameBits, num_threads: Callable[[int], None], conv_args: ConvArgs
) -> None:
    x, w, b, s, p, d, g = conv_args(CASES[2], torch.float32)
    num_threads(1)
    one = convolution(x, w, b, s, p, d, False, [0, 0], g)
    num_threads(2)
    two = convolution(x, w, b, s, p, d, False, [0, 0], g)
    assert_same_bits(one, two)
    assert_same_bits(convolution(x[1:2], w, b, s, p, d, False, [0, 0], g), two[1:2])
    x_cl = x.to(memory_format=torch.channels_last)
    assert_same_bits(convolution(x_cl, w, b, s, p, d, False, [0, 0], g), two)


def test_bad_inputs_raise_clear_errors(rand: Rand) -> None:
    x, w = rand(1, 4, 5, 5), rand(2, 4, 3, 3)
    with pytest.raises(UnsupportedInputError, match="transposed"):
        convolution(x, w, None, [1, 1], [0, 0], [1, 1], True, [0, 0], 1)
    with pytest.raises(UnsupportedInputError, match="1-D or 2-D"):
        convolution(rand(1, 4, 3, 3, 3), rand(2, 4, 1, 1, 1), None, [1, 1, 1], [0, 0, 0],
                    [1, 1, 1], False, [0, 0, 0], 1)
    with pytest.raises(ConvShapeError, match="groups"):
        convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 3)
    with pytest.raises(ConvShapeError, match="smaller than"):
        convolution(rand(1, 4, 2, 2), w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    with pytest.raises(ConvShapeError, match="one dtype"):
        convolution(x, w.double(), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    with pytest.raises(UnsupportedInputError, match="int32"):
        convolution(x.int(), w.int(), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    with pytest.raises(ConvShapeError, match="grad_output"):
        convolution_backward(rand(1, 2, 4, 4), x, w, None, [1, 1], [0, 0], [1, 1], False,
                             [0, 0], 1, [True, True, False])
