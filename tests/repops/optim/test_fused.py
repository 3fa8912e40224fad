"""The optimizer classes' fused paths against the traced op-by-op update (verde's jobs' path).

The traced run records every op, so it never fuses: it is the functional update itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

import repops
import repops.optim.adam as adam_module
from repops.optim import Adam, AdamW
from repops.optim.clip import clip_grad_norm_

#: Sizes: a tail inside one chunk, several chunks, and one past the parallel threshold.
SHAPES = [(7, 5), (4099,), (300, 130)]
SPECIALS = [0.0, -0.0, 1e-42, -1e-40, 3e38, -2.5e-39, 7.0, -1e-3]


def _params() -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(5)
    params = [nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES]
    with torch.no_grad():
        params[2].view(-1)[: len(SPECIALS)] = torch.tensor(SPECIALS)
    return params


def _run(opt_cls: type, traced: bool, steps: int = 4, **kw: object) -> list[torch.Tensor]:
    params = _params()
    opt = opt_cls(params, lr=3e-2, **kw)
    for k in range(steps):
        g = torch.Generator().manual_seed(50 + k)
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * 10.0 ** (k - 2)
            p.grad.view(-1)[: len(SPECIALS)] = torch.tensor(SPECIALS) * 1e-3
        with repops.reproducible(tracer=repops.Tracer() if traced else None):
            opt.step()
    state = [opt.state[p][k] for p in params for k in ("exp_avg", "exp_avg_sq")]
    return [t.detach().clone() for t in [*params, *state]]


def _same_bits(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    pairs = zip(a, b, strict=True)
    return all(torch.equal(x.view(torch.int32), y.view(torch.int32)) for x, y in pairs)


def _count_fused(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    results: list[bool] = []
    real: Callable[..., bool] = adam_module.fused_adam_step

    def counting(*args: object, **kwargs: object) -> bool:
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(adam_module, "fused_adam_step", counting)
    return results


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("opt_cls", "kw"), [
    (AdamW, {}),
    (AdamW, {"weight_decay": 0.3, "betas": (0.8, 0.99), "eps": 1e-6}),
    (Adam, {}),
    (Adam, {"weight_decay": 0.1, "maximize": True}),
    (AdamW, {"weight_decay": 0.0, "maximize": True}),
])
def test_the_fused_update_has_the_bits_of_the_traced_ops(
    opt_cls: type, kw: dict, threads: int, monkeypatch: pytest.MonkeyPatch,
    num_threads: Callable[[int], None],
) -> None:
    num_threads(1)
    traced = _run(opt_cls, True, **kw)
    fused_calls = _count_fused(monkeypatch)
    num_threads(threads)
    fused = _run(opt_cls, False, **kw)
    assert fused_calls and all(fused_calls)  # the fused path really ran, for every parameter
    assert _same_bits(fused, traced)
    assert not torch.equal(fused[0], _params()[0])  # it moved


def test_nan_gradients_give_nan_where_the_ops_do(monkeypatch: pytest.MonkeyPatch) -> None:
    params = [nn.Parameter(torch.ones(9)) for _ in range(2)]
    results = []
    for traced in (True, False):
        ps = [nn.Parameter(p.detach().clone()) for p in params]
        opt = AdamW(ps, lr=0.1)
        for p in ps:
            p.grad = torch.tensor([1.0, float("nan"), -2.0, float("inf"), 0.0, 3.0, 1.0, 1.0, 1.0])
        with repops.reproducible(tracer=repops.Tracer() if traced else None):
            opt.step()
        results.append(torch.cat([ps[0].detach(), opt.state[ps[0]]["exp_avg"]]))
    traced, fused = results
    assert torch.equal(torch.isnan(traced), torch.isnan(fused))
    finite = ~torch.isnan(traced)
    assert torch.equal(traced[finite], fused[finite])


@pytest.mark.parametrize("case", ["amsgrad", "float64", "strided", "traced", "shared grad"])
def test_other_tensors_and_traced_steps_take_the_op_path(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fused_calls = _count_fused(monkeypatch)
    dtype = torch.float64 if case == "float64" else torch.float32
    base = torch.randn(6, 4, dtype=dtype)
    p = nn.Parameter(base.t() if case == "strided" else base)
    want_p = p.detach().clone()
    grad = torch.randn(p.shape, dtype=dtype)
    opt = AdamW([p], lr=0.1, amsgrad=case == "amsgrad")
    p.grad = p.detach() if case == "shared grad" else grad
    ref = AdamW([nn.Parameter(want_p)], lr=0.1, amsgrad=case == "amsgrad")
    ref.param_groups[0]["params"][0].grad = want_p.clone() if case == "shared grad" else grad
    with repops.reproducible(tracer=repops.Tracer() if case == "traced" else None):
        opt.step()
    with repops.reproducible(tracer=repops.Tracer()):
        ref.step()
    assert not any(fused_calls)  # declined (or, traced, never asked)
    assert torch.equal(p.detach(), ref.param_groups[0]["params"][0].detach())


def test_the_fused_update_bumps_the_version_counters() -> None:
    p = nn.Parameter(torch.randn(10))
    p.grad = torch.randn(10)
    opt = AdamW([p], lr=0.1)
    opt.step()  # creates the state
    versions = (p._version, opt.state[p]["exp_avg"]._version)
    with repops.reproducible():
        opt.step()
    assert p._version > versions[0] and opt.state[p]["exp_avg"]._version > versions[1]


@pytest.mark.parametrize("max_norm", [1.0, 1e9])
def test_clipping_in_place_has_the_bits_of_the_traced_ops(max_norm: float) -> None:
    results, before = [], []
    for traced in (True, False):
        params = _params()
        for i, p in enumerate(params):
            p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) * 4
        params[-1].grad.view(-1)[:2] = torch.tensor([-0.0, 1e-41])
        before = [p.grad.clone() for p in params]
        with repops.reproducible(tracer=repops.Tracer() if traced else None):
            total = clip_grad_norm_(params, max_norm)
        results.append([total, *(p.grad.clone() for p in params)])
    assert _same_bits(results[0], results[1])
    assert torch.equal(results[1][1], before[0]) == (max_norm > 1e6)  # clipped, or left alone


@pytest.mark.parametrize("sharing", ["one tensor", "overlapping views"])
def test_clipping_gradients_that_share_memory_gives_the_traced_bits(sharing: str) -> None:
    results = []
    for traced in (True, False):
        a, b = nn.Parameter(torch.zeros(60)), nn.Parameter(torch.zeros(60))
        buf = torch.arange(70, dtype=torch.float32) - 20.0
        if sharing == "one tensor":
            a.grad = b.grad = buf[:60]
        else:
            a.grad, b.grad = buf[:60], buf[10:]
        with repops.reproducible(tracer=repops.Tracer() if traced else None):
            total = clip_grad_norm_([a, b], 1.0)
        results.append([total, buf.clone()])
    assert _same_bits(results[0], results[1])


def test_disjoint_views_of_one_buffer_keep_the_in_place_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Gradients as views of one bucket and parameters in one flat buffer share a storage but
    no memory: the fused update and the in-place clip still run, with the traced bits."""
    import repops.optim.clip as clip_module

    copying: list[object] = []
    real_copying = clip_module.clip_grad_norms
    monkeypatch.setattr(clip_module, "clip_grad_norms",
                        lambda *a: copying.append(a) or real_copying(*a))
    fused_calls = _count_fused(monkeypatch)
    results = []
    for traced in (True, False):
        flat = torch.arange(70, dtype=torch.float32) / 7.0 - 3.0
        params = [nn.Parameter(flat[:30]), nn.Parameter(flat[30:].view(8, 5))]
        bucket = torch.arange(70, dtype=torch.float32) - 20.0
        params[0].grad, params[1].grad = bucket[:30], bucket[30:].view(8, 5)
        opt = AdamW(params, lr=0.1)
        with repops.reproducible(tracer=repops.Tracer() if traced else None):
            total = clip_grad_norm_(params, 1.0)
            opt.step()
        results.append([total, flat.clone(), bucket.clone()])
    assert _same_bits(results[0], results[1])
    assert fused_calls and all(fused_calls)  # both parameters, untraced
    assert len(copying) == 1  # only the traced clip copied


def test_no_fusing_under_another_dispatch_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mode entered inside the reproducible one (an op logger) must see every op."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpLog(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    fused_calls = _count_fused(monkeypatch)
    p = nn.Parameter(torch.randn(10))
    p.grad = torch.randn(10)
    opt = AdamW([p], lr=0.1)
    log = OpLog()
    with repops.reproducible(), log:
        opt.step()
        clip_grad_norm_([p], 0.5)
    assert not fused_calls
    assert "aten.sqrt.default" in log.ops and "aten.copy_.default" in log.ops


def test_scalars_beyond_binary32_round_to_infinity_without_a_warning() -> None:
    results = []
    for traced in (True, False):
        p = nn.Parameter(torch.full((5,), 0.5))
        p.grad = torch.ones(5)
        opt = AdamW([p], lr=1e-3, weight_decay=1e300)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with repops.reproducible(tracer=repops.Tracer() if traced else None):
                opt.step()
        results.append(p.detach().clone())
    assert torch.equal(results[0].isnan(), results[1].isnan())
    assert _same_bits([results[0].nan_to_num()], [results[1].nan_to_num()])
