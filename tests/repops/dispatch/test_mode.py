"""The reproducible dispatch mode: routing, strict refusal, non-strict flagging, state hygiene."""

from __future__ import annotations

import threading
import warnings

import numba
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

import repops
from repops.dispatch.mode import NestedModeError, NonReproducibleWarning
from repops.dispatch.routing import RouteKind, route_for
from repops.errors import InPlaceCastError, OperandDtypeError, UnsupportedOpError

aten = torch.ops.aten


def test_strict_refuses_median_and_names_it() -> None:
    x = torch.randn(7)
    with pytest.raises(UnsupportedOpError, match=r"aten\.median\.default"), repops.reproducible():
        torch.median(x)


def test_strict_refuses_svd_and_names_it() -> None:
    x = torch.randn(4, 3)
    with pytest.raises(UnsupportedOpError, match=r"aten\._linalg_svd"), repops.reproducible():
        torch.linalg.svd(x)


def test_add_with_alpha_one_is_exact_and_other_alphas_are_not() -> None:
    a, b = torch.randn(5), torch.randn(5)
    with repops.reproducible():
        c = torch.add(a, b)
    assert torch.equal(c, a + b)
    route = route_for(aten.add.Tensor)
    assert route.exact_case is not None
    assert route.exact_case((a, b), {})
    assert not route.exact_case((a, b), {"alpha": 2.0})
    if route.kind is not RouteKind.KERNEL:  # no kernel for alpha != 1: refused, not vendor
        with pytest.raises(UnsupportedOpError, match=r"aten\.add\.Tensor"), repops.reproducible():
            torch.add(a, b, alpha=2.0)


def test_cumprod_is_refused_and_named() -> None:
    x = torch.randn(4)
    with pytest.raises(UnsupportedOpError, match=r"aten\.cumprod\.default"), repops.reproducible():
        torch.cumprod(x, 0)


def test_addcmul_is_not_exact() -> None:
    """addcmul is a kernel op (elementwise engineer) or refused; never the vendor kernel."""
    route = route_for(aten.addcmul.default)
    assert route.kind in (RouteKind.KERNEL, RouteKind.UNLISTED)


def test_sum_goes_to_the_repops_kernel_not_the_vendor() -> None:
    assert route_for(aten.sum.default).kind is RouteKind.KERNEL
    assert route_for(aten.mul.Tensor).kind is RouteKind.EXACT
    assert route_for(aten.mean.dim).kind is RouteKind.KERNEL


def test_integer_data_runs_any_op_exactly() -> None:
    x = torch.arange(10)
    with repops.reproducible():
        s = torch.cumsum(x, 0)
        m = torch.median(x)  # integer median: pure selection on integers
    assert torch.equal(s, torch.cumsum(x, 0))
    assert int(m) == 4


def test_non_strict_runs_vendor_warns_once_and_flags_the_tracer() -> None:
    tracer = repops.Tracer()
    x = torch.randn(9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with repops.reproducible(strict=False, tracer=tracer) as mode:
            a = torch.median(x)
            b = torch.median(x)
    assert torch.equal(a, b)
    msgs = [w for w in caught if issubclass(w.category, NonReproducibleWarning)]
    assert len(msgs) == 1 and "aten.median.default" in str(msgs[0].message)
    assert mode.reproducible is False and mode.nonreproducible_ops == ["aten.median.default"]
    assert tracer.reproducible is False and tracer.nonreproducible_ops == ["aten.median.default"]


def test_exact_only_block_stays_reproducible() -> None:
    tracer2 = repops.Tracer()
    x = torch.randn(3)
    with repops.reproducible(strict=False, tracer=tracer2) as mode2:
        x.mul(2.0).neg()
    assert mode2.reproducible and tracer2.reproducible


def test_exception_inside_block_leaves_no_state() -> None:
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    tracer = repops.Tracer()
    with pytest.raises(UnsupportedOpError), repops.reproducible(tracer=tracer):
        torch.median(torch.randn(5))
    assert not _get_current_dispatch_mode_stack()
    assert (torch.get_num_threads(), numba.get_num_threads()) == (torch_threads, numba_threads)
    with repops.reproducible(tracer=tracer):  # the tracer was released
        torch.ones(2).mul(3.0)
    x = torch.randn(5)
    assert torch.equal(torch.median(x), x.sort().values[2])  # vendor again outside


def test_nested_blocks_are_refused() -> None:
    with repops.reproducible(), pytest.raises(NestedModeError), repops.reproducible():
        pass
    assert not _get_current_dispatch_mode_stack()


def test_same_mode_object_cannot_be_entered_twice() -> None:
    mode = repops.reproducible()
    with mode, pytest.raises(NestedModeError), mode:
        pass


def test_a_tracer_serves_one_block_at_a_time() -> None:
    tracer = repops.Tracer()
    errors: list[BaseException] = []
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with repops.reproducible(tracer=tracer):
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    entered.wait(10)
    try:
        with repops.reproducible(tracer=tracer):
            pass
    except repops.TracerInUseError as exc:
        errors.append(exc)
    release.set()
    worker.join()
    assert len(errors) == 1


def test_two_threads_each_with_their_own_block_agree() -> None:
    x = torch.randn(64, 33)
    results: dict[int, torch.Tensor] = {}

    def work(k: int) -> None:
        with repops.reproducible():
            results[k] = torch.softmax(x, dim=1).sum(dim=0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.equal(results[0], results[1])
    with repops.reproducible():
        mine = torch.softmax(x, dim=1).sum(dim=0)
    assert torch.equal(mine, results[0])


def test_backward_ops_are_routed_inside_the_block() -> None:
    tracer = repops.Tracer()
    x = torch.randn(4, 6, requires_grad=True)
    with repops.reproducible(tracer=tracer):
        torch.softmax(x, dim=1).sum().backward()
    ops = [n.op for n in tracer.nodes]
    assert "aten._softmax_backward_data.default" in ops
    assert x.grad is not None


def test_parameters_are_handled() -> None:
    p = nn.Parameter(torch.randn(3, 4))
    with repops.reproducible():
        y = (p * 2.0).sum()
        y.backward()
    assert torch.equal(p.grad, torch.full((3, 4), 2.0))


def test_foreach_ops_are_split_per_tensor() -> None:
    xs = [torch.randn(3), torch.randn(2, 2)]
    ys = [torch.randn(3), torch.randn(2, 2)]
    expected = [x + y for x, y in zip(xs, ys, strict=True)]
    tracer = repops.Tracer()
    with repops.reproducible(tracer=tracer):
        torch._foreach_add_(xs, ys)
        norms = torch._foreach_norm(xs)
    assert all(torch.equal(a, b) for a, b in zip(xs, expected, strict=True))
    ops = [n.op for n in tracer.nodes]
    assert ops == ["aten.add_.Tensor"] * 2 + ["aten.linalg_vector_norm.default"] * 2
    assert torch.allclose(norms[1], expected[1].norm())


def test_foreach_with_alpha_runs_the_per_tensor_route() -> None:
    xs, ys = [torch.randn(3), torch.randn(4)], [torch.randn(3), torch.randn(4)]
    with repops.reproducible():
        expected = [torch.add(x, y, alpha=0.5) for x, y in zip(xs, ys, strict=True)]
    tracer = repops.Tracer()
    with repops.reproducible(tracer=tracer):
        torch._foreach_add_(xs, ys, alpha=0.5)
    assert all(torch.equal(a, b) for a, b in zip(xs, expected, strict=True))
    assert [n.op for n in tracer.nodes] == ["aten.add_.Tensor"] * 2


def test_foreach_lists_of_different_lengths_are_a_value_error() -> None:
    from repops.dispatch.foreach import run_foreach

    with pytest.raises(ValueError, match="entries"):
        run_foreach(lambda f, a, k: f(*a, **k), aten._foreach_add_.List,
                    ([torch.ones(2)], [torch.ones(2), torch.ones(2)]), {})


def test_torch_clip_grad_norm_runs_through_foreach_split() -> None:
    params = [nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(2, 3))]
    for p in params:
        p.grad = torch.randn_like(p) * 10
    with repops.reproducible():
        total = torch.nn.utils.clip_grad_norm_(params, 1.0)
    assert total > 1.0


def test_random_op_without_seed_is_refused_in_strict_mode() -> None:
    with pytest.raises(UnsupportedOpError, match=r"aten\.randn"), repops.reproducible():
        torch.randn(3)


def test_cross_entropy_forward_backward_routes_to_kernels() -> None:
    logits = torch.randn(5, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0])
    with repops.reproducible():
        F.cross_entropy(logits, y).backward()
    ref = logits.detach().clone().requires_grad_()
    F.cross_entropy(ref, y).backward()
    assert torch.allclose(logits.grad, ref.grad, atol=1e-6)


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="strict"):
        repops.reproducible(strict="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        repops.reproducible(seed=-1)
    with pytest.raises(ValueError, match="tracer"):
        repops.reproducible(tracer=object())  # type: ignore[arg-type]


def test_kernel_outputs_have_the_vendor_layout() -> None:
    """For heads split out of a (B, T, H*D) projection the vendor CPU attention returns
    (B, H, T, D) stored as (B, T, H, D); code that views the transposed output must keep
    working inside the mode (and trace the same graph)."""
    q, k, v = (torch.randn(2, 5, 3, 4).transpose(1, 2) for _ in range(3))
    vendor = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    with repops.reproducible():
        ours = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        merged = ours.transpose(1, 2).view(2, 5, 12)  # fails on a contiguous (B,H,T,D) output
    assert ours.stride() == vendor.stride()
    assert merged.shape == (2, 5, 12)
    torch.testing.assert_close(ours, vendor, rtol=1e-5, atol=1e-6)


def test_in_place_and_out_variants_of_kernel_ops_use_the_kernel() -> None:
    x = torch.randn(6, 5)
    with repops.reproducible():
        expected_sum = torch.sum(x, 0)
        expected_exp = torch.exp(x)
        out = torch.empty(5)
        torch.sum(x, 0, out=out)
        y = x.clone()
        y.exp_()
    assert route_for(aten.sum.IntList_out).kind is RouteKind.KERNEL_OUT
    assert route_for(aten.exp_.default).kind is RouteKind.KERNEL_INPLACE
    assert torch.equal(out, expected_sum)
    assert torch.equal(y, expected_exp)


_COMPOUND_IN_PLACE = {
    "add_": lambda s, a, b: s.add_(a, alpha=0.5),
    "sub_": lambda s, a, b: s.sub_(a, alpha=2),
    "addcmul_": lambda s, a, b: s.addcmul_(a, b, value=0.5),
    "addcdiv_": lambda s, a, b: s.addcdiv_(a, b, value=0.5),
    "lerp_": lambda s, a, b: s.lerp_(a, 0.3),
}


@pytest.mark.parametrize("name", sorted(_COMPOUND_IN_PLACE))
def test_in_place_float_result_into_an_integer_tensor_raises_as_torch_does(name: str) -> None:
    op = _COMPOUND_IN_PLACE[name]
    a, b = torch.full((6,), 1.5), torch.full((6,), 2.0)
    with pytest.raises(RuntimeError):  # torch's own behaviour, outside the mode
        op(torch.arange(6), a, b)
    ints = torch.arange(6)
    # lerp takes one dtype only: torch (and the mode) refuse its float `end` before any cast
    error, message = ((OperandDtypeError, r"int64 for `end`") if name == "lerp_"
                      else (InPlaceCastError, r"float32 can't be cast.*int64"))
    with pytest.raises(error, match=message), repops.reproducible():
        op(ints, a, b)
    assert torch.equal(ints, torch.arange(6))  # nothing written
    # Casts torch allows go through: a float32 result into float64, float64 into float32
    # (lerp takes one dtype only, in torch too).
    for self_dtype, other_dtype in ((torch.float64, torch.float32),
                                    (torch.float32, torch.float64)):
        if name == "lerp_":
            other_dtype = self_dtype
        s = torch.ones(6, dtype=self_dtype)
        want = op(s.clone(), a.to(other_dtype), b.to(other_dtype))
        with repops.reproducible():
            got = op(s, a.to(other_dtype), b.to(other_dtype))
        assert got.dtype == self_dtype and torch.allclose(got, want)


@pytest.mark.parametrize("end_dtype", [torch.float64, torch.float16])
@pytest.mark.parametrize("in_place", [False, True])
def test_lerp_refuses_an_end_of_another_dtype_as_torch_does(
    end_dtype: torch.dtype, in_place: bool
) -> None:
    s, end = torch.randn(6), torch.randn(6).to(end_dtype)

    def op(a: torch.Tensor) -> torch.Tensor:
        return a.lerp_(end, 0.3) if in_place else torch.lerp(a, end, 0.3)

    with pytest.raises(RuntimeError, match="end"):  # torch's own refusal, outside the mode
        op(s.clone())
    before = s.clone()
    with pytest.raises(OperandDtypeError, match=r"lerp: .*float32 for `end`.*got"), \
            repops.reproducible():
        op(s)
    assert torch.equal(s, before)  # nothing written
    end = end.float()  # the same dtype goes through, as in torch
    want = op(s.clone())
    with repops.reproducible():
        got = op(s.clone())
    assert got.dtype == torch.float32 and torch.allclose(got, want)


def test_unknown_tensor_subclasses_are_refused() -> None:
    from torch.testing._internal.two_tensor import TwoTensor

    t = TwoTensor(torch.ones(2), torch.ones(2))
    with pytest.raises(repops.UnsupportedInputError, match="TwoTensor"), repops.reproducible():
        t.mul(2.0)
