"""The aten contract: every ATEN_KERNELS entry takes the overload's arguments unchanged.

1. Signatures: parameter names, order and keyword-only markers equal the aten schema's.
2. End to end: a minimal TorchDispatchMode (test-only) routes exactly the ops in the tables to
   the kernels, ``fn(*args, **kwargs)``, while real models run forward and backward; results
   must stay close to torch, and the mode must actually have routed the ops we expect.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from repops.kernels import embedding, extrema, losses, norms, reductions, scan, softmax

MODULES = [reductions, softmax, norms, losses, embedding, extrema, scan]
TABLE: dict[str, Callable[..., Any]] = {}
for _m in MODULES:
    TABLE.update(_m.ATEN_KERNELS)


def _overload(name: str) -> Any:
    _, op, overload = name.split(".")
    return getattr(getattr(torch.ops.aten, op), overload)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_signature_matches_aten_schema(name: str) -> None:
    schema = _overload(name)._schema
    params = list(inspect.signature(TABLE[name]).parameters.values())
    assert [p.name for p in params] == [a.name for a in schema.arguments], name
    for p, a in zip(params, schema.arguments, strict=True):
        assert (p.kind == inspect.Parameter.KEYWORD_ONLY) == a.kwarg_only, (name, p.name)


def test_signature_check_can_fail() -> None:
    def wrong(self: torch.Tensor, dims: list[int]) -> torch.Tensor:
        return self

    schema = _overload("aten.sum.dim_IntList")._schema
    names = [p for p in inspect.signature(wrong).parameters]
    assert names != [a.name for a in schema.arguments]


class Route(TorchDispatchMode):
    """Test-only router: ops in TABLE go to repops kernels, everything else to torch."""

    def __init__(self) -> None:
        super().__init__()
        self.routed: set[str] = set()

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = f"aten.{func._schema.name.split('::')[1]}.{func._overloadname}"
        fn = TABLE.get(name)
        if fn is None:
            return func(*args, **kwargs)
        self.routed.add(name)
        return fn(*args, **kwargs)


def _run(model: Callable[[], list[torch.Tensor]]) -> tuple[list[torch.Tensor], set[str]]:
    torch.manual_seed(0)
    want = [t.detach().clone() for t in model()]
    torch.manual_seed(0)
    mode = Route()
    with mode:
        got = model()
    got = [t.detach().clone() for t in got]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    return got, mode.routed


def test_layer_norm_model() -> None:
    def model() -> list[torch.Tensor]:
        ln = torch.nn.LayerNorm(24)
        x = torch.randn(5, 7, 24, requires_grad=True)
        y = ln(x)
        (y * torch.linspace(-1, 1, 24)).sum().backward()
        return [y, x.grad, ln.weight.grad, ln.bias.grad]

    _, routed = _run(model)
    assert {
        "aten.native_layer_norm.default",
        "aten.native_layer_norm_backward.default",
        "aten.sum.default",
    } <= routed


@pytest.mark.parametrize(
    "kw",
    [{"ignore_index": 1}, {"label_smoothing": 0.1}, {"reduction": "sum"}, {"reduction": "none"}],
)
def test_cross_entropy_model(kw: dict[str, Any]) -> None:
    def model() -> list[torch.Tensor]:
        x = torch.randn(12, 9, requires_grad=True)
        t = torch.randint(0, 9, (12,))
        w = torch.rand(9)
        loss = F.cross_entropy(x, t, weight=w, **kw)
        loss.sum().backward()
        return [loss, x.grad]

    _, routed = _run(model)
    assert {
        "aten._log_softmax.default",
        "aten.nll_loss_forward.default",
        "aten.nll_loss_backward.default",
        "aten._log_softmax_backward_data.default",
    } <= routed


def test_spatial_cross_entropy_and_mse() -> None:
    def model() -> list[torch.Tensor]:
        x = torch.randn(2, 5, 3, 4, requires_grad=True)
        t = torch.randint(0, 5, (2, 3, 4))
        p = torch.randn(2, 5, 3, 4, requires_grad=True)
        loss = F.cross_entropy(x, t) + F.mse_loss(p, torch.randn(2, 5, 3, 4))
        loss.backward()
        return [loss, x.grad, p.grad]

    _, routed = _run(model)
    assert {"aten.nll_loss2d_forward.default", "aten.mse_loss_backward.default"} <= routed


def test_embedding_softmax_stats_model() -> None:
    def model() -> list[torch.Tensor]:
        emb = torch.nn.Embedding(11, 8, padding_idx=0)
        idx = torch.randint(0, 11, (3, 6))
        h = emb(idx)
        s = torch.softmax(h, -1)
        v = h.var(dim=1) + h.std() + h.norm() + h.mean(dim=(0, 1)).sum() + h.cumsum(1).sum()
        out = v.sum() + (s * h).sum() + h.amax(dim=1).sum() + h.max(dim=2).values.sum()
        out.backward()
        return [out, emb.weight.grad, h.argmax(-1).float()]

    _, routed = _run(model)
    assert {
        "aten.embedding_dense_backward.default",
        "aten._softmax.default",
        "aten._softmax_backward_data.default",
        "aten.var.correction",
        "aten.std.correction",
        "aten.linalg_vector_norm.default",
        "aten.mean.dim",
        "aten.cumsum.default",
        "aten.amax.default",
        "aten.max.dim",
        "aten.argmax.default",
    } <= routed


def test_clip_grad_norm_model() -> None:
    def model() -> list[torch.Tensor]:
        p = [torch.nn.Parameter(torch.randn(6, 5)), torch.nn.Parameter(torch.randn(7))]
        for q in p:
            q.grad = torch.randn_like(q)
        total = torch.nn.utils.clip_grad_norm_(p, 0.5)
        return [total, p[0].grad, p[1].grad]

    _, routed = _run(model)
    assert "aten.linalg_vector_norm.default" in routed
