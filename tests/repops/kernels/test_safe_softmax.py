"""_safe_softmax: the repops softmax bits, with fully masked rows zeroed instead of NaN."""

import pytest
import torch

from repops.kernels.safe_softmax import safe_softmax
from repops.kernels.softmax import softmax


def test_unmasked_rows_have_softmax_bits_and_masked_rows_are_zero() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=gen)
    x[1] = float("-inf")
    x[3, :4] = float("-inf")
    out = safe_softmax(x, -1)
    ref = softmax(x, -1, False)
    keep = torch.tensor([0, 2, 3, 4])
    assert torch.equal(out[keep].view(torch.int32), ref[keep].view(torch.int32))
    assert torch.equal(out[1], torch.zeros(7)) and not torch.signbit(out[1]).any()
    assert torch.isnan(ref[1]).all()  # what plain softmax gives: the case this op exists for


def test_dim_and_dtype_arguments() -> None:
    x = torch.randn(4, 3, 6, dtype=torch.float64).to(torch.float32)
    x[:, 1, :] = float("-inf")
    out = safe_softmax(x, 1)
    assert torch.equal(out, safe_softmax(x.transpose(1, 2).contiguous(), 2).transpose(1, 2))
    half = safe_softmax(x.to(torch.bfloat16), 1, torch.float32)
    assert half.dtype == torch.float32


def test_matches_torch_within_tolerance_and_rejects_float64() -> None:
    x = torch.randn(8, 16)
    torch.testing.assert_close(safe_softmax(x, -1), torch.ops.aten._safe_softmax(x, -1))
    with pytest.raises(Exception, match=r"float64|dtype"):
        safe_softmax(torch.randn(2, 3, dtype=torch.float64), -1)
