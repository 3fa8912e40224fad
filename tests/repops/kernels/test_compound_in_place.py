"""In-place compound ops (add_, sub_, addcmul_, addcdiv_, lerp_): written straight into self where
that is safe, and always the bits of the functional op copied in (spec/elementwise.md §9)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest
import torch

import repops
from repops.dispatch.routing import route_for
from repops.kernels import _elementwise_args as args_mod
from repops.kernels.compound_ops import IN_PLACE_CASES

aten = torch.ops.aten

#: (in-place method call, the same op as a functional call), on (self, a, b).
OPS: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "add_": (lambda s, a, b: s.add_(a, alpha=0.3), lambda s, a, b: torch.add(s, a, alpha=0.3)),
    "sub_": (lambda s, a, b: s.sub_(a, alpha=0.3), lambda s, a, b: torch.sub(s, a, alpha=0.3)),
    "addcmul_": (lambda s, a, b: s.addcmul_(a, b, value=0.25),
                 lambda s, a, b: torch.addcmul(s, a, b, value=0.25)),
    "addcdiv_": (lambda s, a, b: s.addcdiv_(a, b, value=-0.1),
                 lambda s, a, b: torch.addcdiv(s, a, b, value=-0.1)),
    "lerp_": (lambda s, a, b: s.lerp_(a, 0.7), lambda s, a, b: torch.lerp(s, a, 0.7)),
    "lerp_tensor_": (lambda s, a, b: s.lerp_(a, b), torch.lerp),
}


def _operands(n: int = 300, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    s, a = torch.randn(n, generator=g), torch.randn(n, generator=g)
    b = torch.rand(n, generator=g) + 0.5
    return [t.to(dtype) for t in (s, a, b)]


@pytest.mark.parametrize("name", sorted(OPS))
def test_in_place_gives_the_functional_bits_and_keeps_the_tensor(name: str) -> None:
    in_place, functional = OPS[name]
    s, a, b = _operands()
    dest = s.clone()
    with repops.reproducible():
        want = functional(s, a, b)
        got = in_place(dest, a, b)
    assert got is dest
    assert torch.equal(dest, want)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_destination_gets_the_functional_bits_written_directly_or_copied(
    name: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_place, functional = OPS[name]
    s, a, b = _operands(400)
    base = torch.cat([s[:1], s])
    cases = {  # case: (destination, operands, written directly?)
        "transposed": (s.reshape(20, 20).t(), a.reshape(20, 20).t(), b.reshape(20, 20).t(),
                       False),
        "bfloat16": (s.bfloat16(), a.bfloat16(), b.bfloat16(), False),
        "float64": (s.double(), a.double(), b.double(), True),
        # other reads self one element behind: a direct write would feed the op its own
        # output (element i + 1 reads the element i just written).
        "overlapping": (base[1:], base[:400], b, False),
        "aliased": (s.clone(), None, b, True),  # other is self, element for element
    }
    fresh: list[int] = []
    empty = np.empty

    def counting_empty(*args: object, **kwargs: object) -> np.ndarray:
        fresh.append(1)
        return empty(*args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(args_mod.np, "empty", counting_empty)
    for case, (dest, x, y, direct) in cases.items():
        x = dest if x is None else x
        with repops.reproducible():
            want = functional(dest.clone(), x.clone(), y.clone())
            fresh.clear()
            address = dest.data_ptr()
            in_place(dest, x, y)
        assert torch.equal(dest, want), case
        assert dest.data_ptr() == address
        assert (not fresh) == direct, case  # no new output array exactly when written directly


def test_a_lerp_weight_that_is_one_element_of_self_is_not_overwritten_first() -> None:
    s, a, _ = _operands(300)
    dest = s.clone()
    with repops.reproducible():
        want = torch.lerp(dest.clone(), a, dest[7].clone())
        dest.lerp_(a, dest[7])  # the 0-dim weight lies inside the destination
    assert torch.equal(dest, want)


def test_direct_writes_only_where_no_operand_overlaps_other_than_element_for_element() -> None:
    s, a, _ = _operands(64)
    flat = [t.numpy() for t in (s, a)]
    output_array = functools.partial(args_mod.output_array, "addcmul")
    out = output_array(s, torch.float32, s.shape, flat)
    assert out.ctypes.data == s.data_ptr()  # self itself, read and written element for element
    base = torch.randn(65)
    shifted = [base[1:].numpy(), a.numpy()]
    assert output_array(base[:64], torch.float32, s.shape, shifted).ctypes.data not in (
        base.data_ptr(), base[1:].data_ptr())
    for dest in (s.reshape(8, 8).t(), s.bfloat16(), s[::2]):
        got = output_array(dest, torch.float32, dest.shape, [np.zeros(dest.numel(),
                                                                      np.float32)])
        assert got.ctypes.data != dest.data_ptr()


def test_the_mode_routes_every_in_place_twin_to_its_shortcut() -> None:
    twins = [
        ("aten.add.Tensor", aten.add_.Tensor), ("aten.sub.Tensor", aten.sub_.Tensor),
        ("aten.addcmul.default", aten.addcmul_.default),
        ("aten.addcdiv.default", aten.addcdiv_.default),
        ("aten.lerp.Scalar", aten.lerp_.Scalar), ("aten.lerp.Tensor", aten.lerp_.Tensor),
    ]
    for name, overload in twins:
        assert route_for(overload).in_place is IN_PLACE_CASES[name]
    assert route_for(aten.addcdiv.default).in_place is None  # functional: no destination


def test_add_with_alpha_one_is_left_to_the_exact_vendor_op() -> None:
    s, a, _ = _operands(10)
    assert IN_PLACE_CASES["aten.add.Tensor"]((s, a), {}) is None
    assert IN_PLACE_CASES["aten.add.Tensor"]((s, a), {"alpha": 1.0}) is None
    dest = s.clone()
    with repops.reproducible():
        dest.add_(a)
    assert torch.equal(dest, s + a)
