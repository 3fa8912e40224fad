"""repops.optim SGD/Adam/AdamW: torch.optim semantics, written order, state_dict."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import repops
from repops.optim import SGD, Adam, AdamW
from repops.optim.functional import AdamCorrections, float_power

EXACT_UPDATE_OPS = {
    "aten.zeros_like.default", "aten.mul.Tensor", "aten.add.Tensor", "aten.sqrt.default",
    "aten.div.Tensor", "aten.sub.Tensor", "aten.maximum.default", "aten.neg.default",
    "aten.clone.default", "aten.detach.default", "aten.copy_.default",
}  # fmt: skip


def _params(seed: int = 0) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(7, 5, generator=g)), nn.Parameter(torch.randn(5, generator=g))]


def _grads(params: list[nn.Parameter], steps: int) -> list[list[torch.Tensor]]:
    out = []
    for k in range(steps):
        g = torch.Generator().manual_seed(100 + k)
        out.append([torch.randn(p.shape, generator=g) for p in params])
    return out


def _run(opt_cls: type, params: list[nn.Parameter], steps: int, **kw: object) -> list[torch.Tensor]:
    grads = _grads(params, steps)
    opt = opt_cls(params, **kw)
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach().clone() for p in params]


CASES = [
    (SGD, torch.optim.SGD, {"lr": 0.1}),
    (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    (Adam, torch.optim.Adam, {"lr": 1e-2}),
    (Adam, torch.optim.Adam, {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True}),
    (AdamW, torch.optim.AdamW, {"lr": 1e-2}),
    (AdamW, torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.3, "amsgrad": True,
                                "betas": (0.8, 0.99)}),
]


@pytest.mark.parametrize(("ours", "theirs", "kw"), CASES)
def test_close_to_torch_optim(ours: type, theirs: type, kw: dict) -> None:
    mine = _run(ours, _params(), 6, **kw)
    ref = _run(theirs, _params(), 6, foreach=False, **kw)
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    start = _params()
    assert not torch.equal(mine[0], start[0])  # it moved


@pytest.mark.parametrize(("ours", "theirs", "kw"), CASES)
def test_same_bits_inside_and_outside_an_explicit_block(ours: type, theirs: type, kw: dict) -> None:
    outside = _run(ours, _params(), 3, **kw)
    params = _params()
    grads = _grads(params, 3)
    opt = ours(params, **kw)
    with repops.reproducible():
        for step_grads in grads:
            for p, g in zip(params, step_grads, strict=True):
                p.grad = g
            opt.step()
    inside = [p.detach() for p in params]
    assert all(torch.equal(a, b) for a, b in zip(outside, inside, strict=True))


def test_adamw_update_is_traced_as_exact_ops_only() -> None:
    params = _params()
    opt = AdamW(params, lr=1e-2, amsgrad=True)
    for p in params:
        p.grad = torch.ones_like(p)
    tracer = repops.Tracer()
    with repops.reproducible(tracer=tracer):
        opt.step()
    ops = {n.op for n in tracer.nodes}
    assert ops <= EXACT_UPDATE_OPS, ops - EXACT_UPDATE_OPS
    assert "aten.sqrt.default" in ops


def test_state_dict_round_trip_continues_bit_for_bit() -> None:
    params_a = _params()
    opt_a = AdamW(params_a, lr=1e-2, amsgrad=True)
    for k in range(3):
        for p in params_a:
            p.grad = torch.full_like(p, 0.1 * (k + 1))
        opt_a.step()
    params_b = [nn.Parameter(p.detach().clone()) for p in params_a]
    opt_b = AdamW(params_b, lr=1e-2, amsgrad=True)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    for opt, params in ((opt_a, params_a), (opt_b, params_b)):
        for p in params:
            p.grad = torch.full_like(p, -0.2)
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))
    assert opt_b.state_dict()["state"][0]["step"] == 4


def test_loading_a_torch_optim_state_dict_works() -> None:
    params = _params()
    torch_opt = torch.optim.Adam(params, lr=1e-2)
    for p in params:
        p.grad = torch.ones_like(p)
    torch_opt.step()
    ours = Adam(params, lr=1e-2)
    ours.load_state_dict(torch_opt.state_dict())
    ours.step()
    assert ours.state[params[0]]["step"] == 2


@pytest.mark.parametrize(
    ("cls", "kw", "match"),
    [
        (SGD, {"lr": -1.0}, "lr"),
        (SGD, {"lr": 0.1, "nesterov": True}, "Nesterov"),
        (SGD, {"lr": 0.1, "foreach": True}, "foreach"),
        (Adam, {"fused": True}, "fused"),
        (Adam, {"betas": (1.0, 0.9)}, "beta"),
        (AdamW, {"eps": -1e-8}, "eps"),
        (AdamW, {"capturable": True}, "capturable"),
        (AdamW, {"lr": torch.tensor(0.1)}, "lr"),
    ],
)
def test_bad_arguments_are_value_errors(cls: type, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(_params(), **kw)


def test_float_power_is_the_written_product() -> None:
    beta, t = 0.999, 37
    expected = 1.0
    for _ in range(t):
        expected = expected * beta
    assert float_power(beta, t) == expected
    assert float_power(0.5, 10) == 2.0**-10  # exact when every product is exact
    assert float_power(0.9, 0) == 1.0
    with pytest.raises(ValueError, match="exponent"):
        float_power(0.9, -1)


def test_cached_powers_are_the_written_product_at_any_step_in_any_order() -> None:
    # the cache keeps every 1024th partial product; values past it and out of order must
    # still be the plain left-to-right product
    beta = 0.9990000000000001
    expected, products = 1.0, [1.0]
    for _ in range(3000):
        expected = expected * beta
        products.append(expected)
    for t in (2999, 1, 1024, 1025, 2048, 0, 3000, 7):
        assert float_power(beta, t) == products[t]


def test_adam_corrections_refuse_a_step_below_one() -> None:
    c = AdamCorrections.at(0.9, 0.999, 3)
    assert c.bias_correction1 == 1.0 - float_power(0.9, 3)
    with pytest.raises(ValueError, match="step"):
        AdamCorrections.at(0.9, 0.999, 0)
