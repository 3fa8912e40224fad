"""Layer norm and RMS norm, forward and backward, against the spec reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import torch

from repops.errors import UnsupportedInputError
from repops.kernels import norms as N
from repops.reference import reductions_nn as ref

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]  # conftest fixture type
OnAllPaths = Callable[[Callable[[], Any]], list[Any]]  # conftest fixture type

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def data(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 3 + 1).to(dtype)


def np32(t: torch.Tensor | None, m: int | None = None) -> np.ndarray | None:
    if t is None:
        return None
    a = t.float().numpy()
    return a.reshape(m, -1) if m is not None else a.reshape(-1)


def back(a: np.ndarray, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(a).reshape(list(shape)).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 16, 17, 33, 257])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_matches_reference(
    n: int, dtype: torch.dtype, affine: str, same_bits: SameBits
) -> None:
    x = data((2, 3, n), dtype, seed=n)
    w = data((n,), dtype, seed=n + 1) if affine != "none" else None
    b = data((n,), dtype, seed=n + 2) if affine == "both" else None
    y, mean, rstd = N.native_layer_norm(x, [n], w, b, 1e-5)
    ry, rm, rr = ref.layer_norm_reference(np32(x, 6), np32(w), np32(b), 1e-5)
    assert same_bits(y, back(ry, x.shape, dtype))
    assert same_bits(mean, back(rm, (2, 3, 1), dtype))
    assert same_bits(rstd, back(rr, (2, 3, 1), dtype))
    g = data((2, 3, n), dtype, seed=n + 3)
    gi, gw, gb = N.native_layer_norm_backward(g, x, [n], mean, rstd, w, b, [True, True, True])
    rgi, rgw, rgb = ref.layer_norm_backward_reference(
        np32(g, 6), np32(x, 6), np32(mean), np32(rstd), np32(w)
    )
    assert same_bits(gi, back(rgi, x.shape, dtype))
    if w is not None:
        assert same_bits(gw, back(rgw, w.shape, dtype))
    else:
        assert gw is None
    if b is not None:
        assert same_bits(gb, back(rgb, b.shape, dtype))
    else:
        assert gb is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 17, 257])
def test_rms_norm_matches_reference(n: int, dtype: torch.dtype, same_bits: SameBits) -> None:
    x = data((5, n), dtype, seed=n)
    w = data((n,), dtype, seed=n + 1)
    y, rstd = N.fused_rms_norm(x, [n], w, 1e-6)
    ry, rr = ref.rms_norm_reference(np32(x, 5), np32(w), 1e-6)
    assert same_bits(y, back(ry, x.shape, dtype))
    assert same_bits(rstd, back(rr, (5, 1), torch.float32))
    g = data((5, n), dtype, seed=n + 3)
    gi, gw = N.fused_rms_norm_backward(g, x, [n], rstd, w, [True, True])
    rgi, rgw = ref.rms_norm_backward_reference(np32(g, 5), np32(x, 5), np32(rstd), np32(w))
    assert same_bits(gi, back(rgi, x.shape, dtype))
    assert same_bits(gw, back(rgw, w.shape, dtype))


def test_close_to_torch() -> None:
    x = data((4, 6, 50), torch.float32, seed=0).requires_grad_()
    w = data((6, 50), torch.float32, seed=1).requires_grad_()
    b = data((6, 50), torch.float32, seed=2).requires_grad_()
    out = N.native_layer_norm(x, [6, 50], w, b, 1e-5)
    want = torch.ops.aten.native_layer_norm(x, [6, 50], w, b, 1e-5)
    for a, c in zip(out, want, strict=True):
        torch.testing.assert_close(a, c.detach(), rtol=1e-5, atol=1e-5)
    g = torch.randn(4, 6, 50)
    got = N.native_layer_norm_backward(g, x, [6, 50], want[1], want[2], w, b, [True] * 3)
    ref_b = torch.ops.aten.native_layer_norm_backward(
        g, x, [6, 50], want[1], want[2], w, b, [True] * 3
    )
    for a, c in zip(got, ref_b, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)
    xr = x.detach().clone().requires_grad_()
    wr = torch.randn(50).requires_grad_()
    yr = torch.nn.functional.rms_norm(xr, [50], wr, 1e-6)
    yr.backward(g)
    y, rstd = N.fused_rms_norm(x, [50], wr, 1e-6)
    torch.testing.assert_close(y, yr.detach(), rtol=1e-5, atol=1e-5)
    gi, gw = N.fused_rms_norm_backward(g, x, [50], rstd, wr, [True, True])
    torch.testing.assert_close(gi, xr.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gw, wr.grad, rtol=1e-4, atol=1e-4)


def test_rows_threads_and_layout_do_not_change_bits(
    same_bits: SameBits, on_all_paths: OnAllPaths
) -> None:
    x = data((64, 40), torch.float32, seed=5)
    w = data((40,), torch.float32, seed=6)
    b = data((40,), torch.float32, seed=7)
    y, mean, rstd = N.native_layer_norm(x, [40], w, b, 1e-5)
    for m in (1, 7):
        assert same_bits(N.native_layer_norm(x[:m], [40], w, b, 1e-5)[0], y[:m])
    assert same_bits(N.native_layer_norm(x.t().contiguous().t(), [40], w, b, 1e-5)[0], y)
    g = data((64, 40), torch.float32, seed=8)

    def run() -> list[torch.Tensor]:
        fwd = N.native_layer_norm(x, [40], w, b, 1e-5)
        bwd = N.native_layer_norm_backward(g, x, [40], mean, rstd, w, b, [True] * 3)
        rms = N.fused_rms_norm(x, [40], w, 1e-6)
        rbw = N.fused_rms_norm_backward(g, x, [40], rms[1], w, [True, True])
        return [*fwd, *bwd, *rms, *rbw]

    first, *rest = on_all_paths(run)
    for other in rest:
        for a, c in zip(first, other, strict=True):
            assert same_bits(a, c)


def test_output_mask_and_bad_inputs() -> None:
    x = torch.randn(3, 8)
    w, b = torch.randn(8), torch.randn(8)
    _, mean, rstd = N.native_layer_norm(x, [8], w, b, 1e-5)
    gi, gw, gb = N.native_layer_norm_backward(
        torch.randn(3, 8), x, [8], mean, rstd, w, b, [True, False, False]
    )
    assert gi is not None and gw is None and gb is None
    with pytest.raises(ValueError, match="normalized_shape"):
        N.native_layer_norm(x, [4], None, None, 1e-5)
    with pytest.raises(ValueError, match="weight has 7"):
        N.native_layer_norm(x, [8], torch.ones(7), None, 1e-5)
    with pytest.raises(UnsupportedInputError, match="int64"):
        N.native_layer_norm(torch.ones(3, 8, dtype=torch.int64), [8], None, None, 1e-5)
    with pytest.raises(ValueError, match="rstd has"):
        N.fused_rms_norm_backward(torch.randn(3, 8), x, [8], torch.ones(2), None, [True, True])


def test_float64_layer_norm_follows_the_same_order(same_bits: SameBits) -> None:
    x = data((3, 17), torch.float64, seed=9)
    w = data((17,), torch.float64, seed=10)
    b = data((17,), torch.float64, seed=11)
    y, mean, rstd = N.native_layer_norm(x, [17], w, b, 1e-5)
    ry, rm, rr = ref.layer_norm_reference(x.numpy(), w.numpy(), b.numpy(), 1e-5)
    assert same_bits(y, torch.from_numpy(ry))
    assert same_bits(mean.reshape(-1), torch.from_numpy(rm))
    assert same_bits(rstd.reshape(-1), torch.from_numpy(rr))
