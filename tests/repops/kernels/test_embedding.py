"""embedding_dense_backward: per-row sums in increasing position order, no atomics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from repops.kernels import embedding as E
from repops.reference import reductions_nn as ref

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]  # conftest fixture type
OnAllPaths = Callable[[Callable[[], Any]], list[Any]]  # conftest fixture type
WideRandn = Callable[..., torch.Tensor]  # conftest fixture type
Case = Callable[..., tuple[torch.Tensor, torch.Tensor]]  # the case fixture below


@pytest.fixture(scope="session")
def case(wide_randn: WideRandn) -> Case:
    """``case(shape, d, vocab, dtype, seed)``: (grad_output, indices), both from one stream."""

    def build(
        shape: tuple[int, ...], d: int, vocab: int, dtype: torch.dtype, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, vocab, shape, generator=gen)
        return wide_randn((*shape, d), dtype, generator=gen), idx

    return build


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("d", [1, 3, 16, 17])
@pytest.mark.parametrize("padding_idx", [-1, 2])
@pytest.mark.parametrize("scale", [False, True])
def test_matches_reference(
    dtype: torch.dtype, d: int, padding_idx: int, scale: bool, same_bits: SameBits, case: Case
) -> None:
    g, idx = case((5, 9), d, 8, dtype, seed=d)
    got = E.embedding_dense_backward(g, idx, 10, padding_idx, scale)
    want = ref.embedding_backward_reference(
        g.float().reshape(-1, d).numpy(), idx.reshape(-1).numpy(), 10, padding_idx, scale
    )
    assert same_bits(got, torch.from_numpy(want).to(dtype))
    assert torch.equal(got[8:], torch.zeros(2, d, dtype=dtype))  # never indexed: +0.0
    if padding_idx >= 0:
        assert not bool(torch.signbit(got[padding_idx]).any())


def test_close_to_torch(case: Case) -> None:
    g, idx = case((6, 11), 12, 20, torch.float32, seed=0)
    for pad, sc in ((-1, False), (3, False), (-1, True)):
        torch.testing.assert_close(
            E.embedding_dense_backward(g, idx, 25, pad, sc),
            torch.ops.aten.embedding_dense_backward(g, idx, 25, pad, sc),
        )


def test_order_is_increasing_position() -> None:
    # Three hits on one row whose sum depends on order: (a + b) + c != a + (b + c).
    a, b, c = 1.0, 2.0**-24, 2.0**-24
    g = torch.tensor([[a], [b], [c]])
    idx = torch.tensor([4, 4, 4])
    got = E.embedding_dense_backward(g, idx, 5, -1, False)[4, 0]
    assert float(got) == float(torch.tensor(a) + torch.tensor(b) + torch.tensor(c))
    rev = E.embedding_dense_backward(g.flip(0), idx, 5, -1, False)[4, 0]
    assert float(rev) != float(got)  # a different position order is a different sum


def test_threads_layout_and_index_shape(
    same_bits: SameBits, on_all_paths: OnAllPaths, case: Case
) -> None:
    g, idx = case((8, 40), 9, 7, torch.float32, seed=1)
    full, *others = on_all_paths(lambda: E.embedding_dense_backward(g, idx, 7, -1, False))
    for o in others:
        assert same_bits(o, full)
    flat = E.embedding_dense_backward(g.reshape(-1, 9), idx.reshape(-1), 7, -1, False)
    assert same_bits(flat, full)
    gt = g.transpose(0, 1).contiguous().transpose(0, 1)
    assert same_bits(E.embedding_dense_backward(gt, idx, 7, -1, False), full)


def test_bad_inputs(case: Case) -> None:
    g, idx = case((2, 3), 4, 5, torch.float32, seed=2)
    with pytest.raises(ValueError, match="index 5 is out of range"):
        E.embedding_dense_backward(g, torch.tensor([[0, 5, 1], [1, 1, 1]]), 5, -1, False)
    with pytest.raises(ValueError, match="indices must be"):
        E.embedding_dense_backward(g, idx.float(), 5, -1, False)
    with pytest.raises(ValueError, match="grad_output shape"):
        E.embedding_dense_backward(g[:1], idx, 5, -1, False)
    with pytest.raises(ValueError, match="num_weights"):
        E.embedding_dense_backward(g, idx, -2, -1, False)
