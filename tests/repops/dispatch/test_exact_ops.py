"""Audit of the exact-op list: every entry is a real aten op, and the single-IEEE-op entries
give numpy's correctly rounded binary32 results on odd sizes and strided inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import repops
from repops.dispatch import exact_ops
from repops.dispatch.routing import RouteKind, route_for

aten = torch.ops.aten


def test_every_listed_packet_is_an_aten_op() -> None:
    names = exact_ops.EXACT_PACKETS | set(exact_ops.CONDITIONAL) | exact_ops.UNINITIALISED
    unknown = [n for n in sorted(names) if not getattr(torch.ops.aten, n).overloads()]
    assert unknown == []


@pytest.mark.parametrize(
    "op", [aten.sum.default, aten.mean.dim, aten.addcmul.default, aten.lerp.Scalar,
           aten.exp.default, aten.var.correction, aten.cumsum.default, aten.prod.default,
           aten.median.default, aten.linalg_vector_norm.default]
)
def test_reductions_and_compound_ops_are_not_on_the_list(op: torch._ops.OpOverload) -> None:
    listed, _ = exact_ops.exactness(op)
    assert not listed
    assert route_for(op).kind is not RouteKind.EXACT


def _strided(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g).t()[1]  # stride 3, odd length


BINARY = {
    "add": (torch.add, np.add),
    "sub": (torch.sub, np.subtract),
    "mul": (torch.mul, np.multiply),
    "div": (torch.div, np.divide),
    "maximum": (torch.maximum, np.maximum),
}
UNARY = {
    "sqrt": (torch.sqrt, np.sqrt),
    "reciprocal": (torch.reciprocal, lambda a: np.float32(1.0) / a),
    "neg": (torch.neg, np.negative),
    "abs": (torch.abs, np.abs),
    "floor": (torch.floor, np.floor),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("n", [1, 17, 1031])
def test_binary_exact_ops_match_ieee(name: str, n: int) -> None:
    ours, ref = BINARY[name]
    a, b = _strided(n, 1), _strided(n, 2)
    with repops.reproducible():
        out = ours(a, b)
        scalar_out = ours(a, 0.1) if name != "maximum" else ours(a, torch.tensor(0.1))
    expected = ref(a.numpy(), b.numpy())
    assert np.array_equal(out.numpy(), expected)
    assert np.array_equal(scalar_out.numpy(), ref(a.numpy(), np.float32(0.1)))


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_exact_ops_match_ieee(name: str) -> None:
    ours, ref = UNARY[name]
    a = _strided(1031, 3).abs() + 1e-3
    with repops.reproducible():
        out = ours(a)
    assert np.array_equal(out.numpy(), ref(a.numpy()))


def test_alpha_predicates() -> None:
    a, b = torch.ones(2), torch.ones(2)
    pred = exact_ops.CONDITIONAL["add"]
    assert pred((a, b), {}) and pred((a, b), {"alpha": 1})
    assert not pred((a, b), {"alpha": 2}) and not pred((a, b, 0.5), {})
    assert exact_ops.CONDITIONAL["arange"]((10,), {})
    assert not exact_ops.CONDITIONAL["arange"]((0.0, 1.0, 0.1), {})
    assert not exact_ops.CONDITIONAL["index_put"]((a, [b], b, True), {})
    assert not exact_ops.CONDITIONAL["sort"]((a,), {})


def test_float_arange_is_refused_integer_arange_runs() -> None:
    with repops.reproducible():
        assert torch.equal(torch.arange(5), torch.tensor([0, 1, 2, 3, 4]))
    with pytest.raises(repops.UnsupportedOpError, match=r"aten\.arange"), repops.reproducible():
        torch.arange(0.0, 1.0, 0.1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_sqrt_is_correctly_rounded_on_contiguous_inputs(dtype: torch.dtype) -> None:
    """torch's CPU sqrt (MKL VML on contiguous inputs) is not correctly rounded; repops's is."""
    g = torch.Generator().manual_seed(4)
    x = (torch.rand(100_000, generator=g, dtype=torch.float64) * 100).to(dtype)
    with repops.reproducible():
        ours = torch.sqrt(x)
    assert route_for(aten.sqrt.default).kind is RouteKind.KERNEL
    wide = x.double().numpy()
    if dtype == torch.float64:
        # binary64 reference: sqrt(x) is correctly rounded iff |r^2 - x| is minimal; compare
        # with numpy's hardware sqrt (IEEE requires correct rounding).
        expected = torch.from_numpy(np.sqrt(wide))
    else:
        # binary32 and narrower: sqrt in binary64 then one rounding is correctly rounded
        # (53 >= 2*24 + 2), and C1 rounds the binary32 result once more to bfloat16.
        expected = torch.from_numpy(np.sqrt(wide).astype(np.float32)).to(dtype)
    assert torch.equal(ours, expected)
