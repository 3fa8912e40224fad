"""repops.optim.clip_grad_norm_: written order, torch semantics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import repops
from repops.optim import clip_grad_norm_


def _params_with_grads(scale: float) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(3)
    params = [nn.Parameter(torch.zeros(shape)) for shape in ((4, 6), (9,), (2,))]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * scale
    params[2].grad = None
    return params


def test_clips_like_torch() -> None:
    ours, theirs = _params_with_grads(5.0), _params_with_grads(5.0)
    total = clip_grad_norm_(ours, 1.0)
    ref_total = torch.nn.utils.clip_grad_norm_(theirs, 1.0, foreach=False)
    torch.testing.assert_close(total, ref_total, rtol=1e-6, atol=0)
    for a, b in zip(ours, theirs, strict=True):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-7)
    after = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in ours[:2]]))
    assert abs(float(after) - 1.0) < 1e-5


def test_small_gradients_are_left_alone() -> None:
    params = _params_with_grads(1e-3)
    before = [p.grad.clone() for p in params[:2]]
    clip_grad_norm_(params, 10.0)
    assert all(torch.equal(b, p.grad) for b, p in zip(before, params, strict=False))


def test_written_order_is_norm_of_stacked_per_tensor_norms() -> None:
    params = _params_with_grads(5.0)
    grads = [p.grad.clone() for p in params[:2]]
    with repops.reproducible():
        norms = [torch.linalg.vector_norm(g) for g in grads]
        expected = torch.linalg.vector_norm(torch.stack(norms))
    tracer = repops.Tracer()
    with repops.reproducible(tracer=tracer):
        total = clip_grad_norm_(params, 1.0)
    assert torch.equal(total, expected)
    assert [n.op for n in tracer.nodes][:4] == [
        "aten.linalg_vector_norm.default", "aten.linalg_vector_norm.default",
        "aten.stack.default", "aten.linalg_vector_norm.default",
    ]


def test_infinity_norm() -> None:
    params = _params_with_grads(5.0)
    top = max(float(p.grad.abs().max()) for p in params[:2])
    total = clip_grad_norm_(params, 1.0, norm_type=float("inf"))
    assert float(total) == top


def test_nonfinite_and_bad_arguments() -> None:
    params = _params_with_grads(1.0)
    params[0].grad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(params, -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_(params, 1.0, norm_type="2")  # type: ignore[arg-type]
