"""Structure-only tracing: a meta / FakeTensor run of a training step gives the same graph
(ops and argument trees with refs) as the real run, so verde's arbiter can derive it alone."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

import repops
from repops.optim import AdamW, clip_grad_norm_
from tests.repops.models import MLP, TinyGPT, gpt_loss


def _traced_step(
    model: nn.Module, batch: dict[str, torch.Tensor], loss_fn: Callable[..., torch.Tensor]
) -> repops.Tracer:
    opt = AdamW(model.parameters(), lr=1e-3)
    tracer = repops.Tracer()
    tracer.register_leaves({f"param:{n}": p for n, p in model.named_parameters()})
    tracer.register_leaves({f"batch:{k}": v for k, v in batch.items()})
    with repops.reproducible(tracer=tracer):
        loss_fn(model, **batch).backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return tracer


def _mlp_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def _gpt_loss(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    return gpt_loss(model, idx)  # type: ignore[arg-type]


def test_meta_trace_of_an_mlp_step_matches_the_real_one() -> None:
    torch.manual_seed(0)
    model = MLP(d_in=16, hidden=24, d_out=10)
    x, y = torch.randn(8, 16), torch.randint(0, 10, (8,))
    real = _traced_step(copy.deepcopy(model), {"x": x, "y": y}, _mlp_loss)
    meta = _traced_step(
        copy.deepcopy(model).to("meta"), {"x": x.to("meta"), "y": y.to("meta")}, _mlp_loss
    )
    assert len(real.nodes) > 50
    assert real.structure() == meta.structure()
    assert all(d is None for n in meta.nodes for d in n.output_digests)
    assert all(d is not None for n in real.nodes for d in n.output_digests)


def test_fake_trace_of_a_gpt_step_matches_the_real_one() -> None:
    torch.manual_seed(0)
    config = {"vocab": 16, "width": 16, "heads": 2, "layers": 2, "seq": 8}
    idx = torch.randint(0, 16, (2, 9))
    real = _traced_step(TinyGPT(**config), {"idx": idx}, _gpt_loss)
    with FakeTensorMode() as fake_mode:
        fake_model = TinyGPT(**config)  # parameters are FakeTensors (cpu, no storage)
        fake = _traced_step(fake_model, {"idx": fake_mode.from_tensor(idx)}, _gpt_loss)
    ops = {n.op for n in real.nodes}
    assert "aten._scaled_dot_product_flash_attention_for_cpu_backward.default" in ops
    assert real.structure() == fake.structure()


def test_a_different_step_gives_a_different_structure() -> None:
    """Negative: the comparison can fail (one hidden width more changes shapes)."""
    x, y = torch.randn(4, 16), torch.randint(0, 10, (4,))
    a = _traced_step(MLP(16, 24, 10), {"x": x, "y": y}, _mlp_loss)
    b = _traced_step(MLP(16, 25, 10), {"x": x, "y": y}, _mlp_loss)
    assert a.structure() != b.structure()


@pytest.mark.parametrize("device", ["meta"])
def test_structure_only_strict_mode_still_refuses_unsupported_ops(device: str) -> None:
    x = torch.randn(5, device=device)
    with pytest.raises(repops.UnsupportedOpError, match=r"aten\.median"), repops.reproducible():
        torch.median(x)


def test_device_label_makes_meta_and_cpu_factory_calls_agree() -> None:
    def run(device: str) -> list[str]:
        tracer = repops.Tracer(device_label="*")
        with repops.reproducible(tracer=tracer):
            torch.zeros(3, device=device).add(torch.ones(3, device=device))
        return tracer.structure()

    assert run("cpu") == run("meta")
    plain = repops.Tracer()
    with repops.reproducible(tracer=plain):
        torch.zeros(3, device="meta")
    assert plain.structure()[0]["args"]["kwargs"]["device"] == {"device": "meta"}
    node = repops.Tracer(device_label="*")
    with repops.reproducible(tracer=node):
        torch.zeros(2, device="cpu")
    (out,) = repops.execute_node(node.nodes[0].op, node.nodes[0].args, {})
    assert out.device.type == "cpu"
    with pytest.raises(ValueError, match="device_label"):
        repops.Tracer(device_label="")
