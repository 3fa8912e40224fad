"""nll_loss (1-d/2-d and 2d-spatial) and mse_loss, forward and backward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from repops.kernels import losses as L
from repops.kernels import softmax as S
from repops.reference import reductions_nn as ref

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]  # conftest fixture type
OnAllPaths = Callable[[Callable[[], Any]], list[Any]]  # conftest fixture type

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
RED = {0: "none", 1: "mean", 2: "sum"}


def case(p: int, c: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.log_softmax(torch.randn(p, c, generator=g) * 3, 1).to(dtype)
    t = torch.randint(0, c, (p,), generator=g)
    t[torch.rand(p, generator=g) < 0.2] = -100
    return x, t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1, 3, 16, 17, 33])
@pytest.mark.parametrize("reduction", [0, 1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_matches_reference(
    p: int, dtype: torch.dtype, reduction: int, weighted: bool, same_bits_or_nan: SameBits
) -> None:
    x, t = case(p, 7, dtype, seed=p)
    w = torch.rand(7, generator=torch.Generator().manual_seed(1)).to(dtype) if weighted else None
    out, tw = L.nll_loss_forward(x, t, w, reduction, -100)
    wn = w.float().numpy() if w is not None else None
    r_out, r_tw = ref.nll_forward_reference(x.float().numpy(), t.numpy(), wn, RED[reduction], -100)
    assert same_bits_or_nan(out, torch.from_numpy(np.array(r_out)).to(dtype))
    assert same_bits_or_nan(tw, torch.from_numpy(np.array(r_tw)).to(dtype))
    g = torch.randn(p).to(dtype) if reduction == 0 else torch.tensor(0.7).to(dtype)
    gi = L.nll_loss_backward(g, x, t, w, reduction, -100, tw)
    r_gi = ref.nll_backward_reference(
        g.float().numpy(), (p, 7), t.numpy(), wn, RED[reduction], -100, np.float32(tw.float())
    )
    assert same_bits_or_nan(gi, torch.from_numpy(r_gi).to(dtype))


def test_nll_close_to_torch_and_cross_entropy_composes() -> None:
    logits = torch.randn(40, 11)
    t = torch.randint(0, 11, (40,))
    t[::5] = -100
    w = torch.rand(11)
    for red in (0, 1, 2):
        for ww in (None, w):
            got = L.nll_loss_forward(torch.log_softmax(logits, 1), t, ww, red, -100)
            want = torch.ops.aten.nll_loss_forward(torch.log_softmax(logits, 1), t, ww, red, -100)
            torch.testing.assert_close(got[0], want[0])
            torch.testing.assert_close(got[1], want[1])
    lp = S.log_softmax(logits, 1, False)
    ce = L.nll_loss_forward(lp, t, None, 1, -100)[0]
    torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(logits, t))
    x4 = torch.randn(2, 5, 3, 4)
    t4 = torch.randint(0, 5, (2, 3, 4))
    got = L.nll_loss2d_forward(x4, t4, None, 1, 2)
    want = torch.ops.aten.nll_loss2d_forward(x4, t4, None, 1, 2)
    torch.testing.assert_close(got[0], want[0])
    g = torch.tensor(0.3)
    torch.testing.assert_close(
        L.nll_loss2d_backward(g, x4, t4, None, 1, 2, want[1]),
        torch.ops.aten.nll_loss2d_backward(g, x4, t4, None, 1, 2, want[1]),
    )


def test_nll_2d_equals_flattened_positions(same_bits_or_nan: SameBits) -> None:
    # nll_loss2d's positions are (n, h, w) row-major: same bits as nll_loss on that flattening.
    x4 = torch.randn(2, 5, 3, 4)
    t4 = torch.randint(0, 5, (2, 3, 4))
    flat_x = x4.permute(0, 2, 3, 1).reshape(-1, 5)
    for red in (0, 1, 2):
        a = L.nll_loss2d_forward(x4, t4, None, red, -100)[0]
        b = L.nll_loss_forward(flat_x, t4.reshape(-1), None, red, -100)[0]
        assert same_bits_or_nan(a.reshape(-1), b.reshape(-1))


def test_ignored_targets_and_threads(same_bits_or_nan: SameBits, on_all_paths: OnAllPaths) -> None:
    x, t = case(50, 9, torch.float32, seed=3)
    t_all = torch.full((50,), -100)
    out, tw = L.nll_loss_forward(x, t_all, None, 1, -100)
    assert bool(torch.isnan(out)) and float(tw) == 0.0
    assert float(L.nll_loss_forward(x, t_all, None, 2, -100)[0]) == 0.0
    full = L.nll_loss_forward(x, t, None, 0, -100)[0]
    for o in on_all_paths(lambda: L.nll_loss_forward(x, t, None, 0, -100)[0]):
        assert same_bits_or_nan(o, full)
    a, b = torch.randn(9, 13), torch.randn(9, 13)
    first, *rest = on_all_paths(lambda: L.mse_loss(a, b, 0))
    assert all(same_bits_or_nan(r, first) for r in rest)
    assert same_bits_or_nan(L.nll_loss_forward(x[:7], t[:7], None, 0, -100)[0], full[:7])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 17, 33])
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_mse_matches_reference(
    n: int, dtype: torch.dtype, reduction: int, same_bits_or_nan: SameBits
) -> None:
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(3, n, generator=gen).to(dtype)
    y = torch.randn(3, n, generator=gen).to(dtype)
    got = L.mse_loss(x, y, reduction)
    want = ref.mse_reference(
        x.float().numpy().reshape(-1), y.float().numpy().reshape(-1), RED[reduction]
    )
    assert same_bits_or_nan(got.reshape(-1), torch.from_numpy(np.array(want)).to(dtype).reshape(-1))
    g = torch.randn(3, n).to(dtype) if reduction == 0 else torch.tensor(1.3).to(dtype)
    gi = L.mse_loss_backward(g, x, y, reduction)
    r = ref.mse_backward_reference(
        g.float().numpy().reshape(-1),
        x.float().numpy().reshape(-1),
        y.float().numpy().reshape(-1),
        RED[reduction],
    )
    assert same_bits_or_nan(gi, torch.from_numpy(r).to(dtype).reshape(3, n))
    torch.testing.assert_close(got, torch.ops.aten.mse_loss(x, y, reduction), rtol=2e-2, atol=1e-2)


def test_bad_inputs() -> None:
    x, t = case(4, 5, torch.float32, seed=0)
    with pytest.raises(ValueError, match="target 9 is out of range"):
        L.nll_loss_forward(x, torch.tensor([0, 9, 1, 2]), None, 1, -100)
    with pytest.raises(ValueError, match="reduction"):
        L.nll_loss_forward(x, t, None, 3, -100)
    with pytest.raises(ValueError, match="integer tensor"):
        L.nll_loss_forward(x, t.float(), None, 1, -100)
    with pytest.raises(ValueError, match="weight must have shape"):
        L.nll_loss_forward(x, t, torch.ones(4), 1, -100)
    with pytest.raises(ValueError, match="target shape"):
        L.nll_loss_forward(x, t[:3], None, 1, -100)
    with pytest.raises(ValueError, match="broadcast"):
        L.mse_loss(torch.ones(3), torch.ones(4))
