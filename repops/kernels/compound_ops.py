"""aten kernels for the compound arithmetic of optimizers and residual updates: add/sub with
alpha, addcmul, addcdiv and lerp (spec/elementwise.md "compound"), each one written fma order
in the compute dtype (binary32 for float16/bfloat16/float32, binary64 for float64).

Their in-place twins (``addcdiv_``...; an optimizer's state updates) also have shortcuts
(``IN_PLACE_CASES``, see repops.dispatch.registry) that write the result straight into the
destination when :func:`repops.kernels._elementwise_args.output_array` allows: same bits as
computing a new tensor and copying it in, without that tensor's pages and the copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from repops._tensor import compute_dtype
from repops.errors import OperandDtypeError
from repops.kernels import elementwise_compound as cmp
from repops.kernels._elementwise_args import (
    float_result,
    is_one,
    meta_dtype,
    output_array,
    prep,
    result_tensor,
    scalar,
    shape_of,
)


def _axpy(  # noqa: PLR0917
    op: str, self: torch.Tensor, other: torch.Tensor, alpha: Any, sign: int,
    into: torch.Tensor | None = None,
) -> torch.Tensor:
    dtype = torch.result_type(self, other)
    if not dtype.is_floating_point:
        vendor = torch.ops.aten.add.Tensor if sign > 0 else torch.ops.aten.sub.Tensor
        result = vendor(self, other, alpha=alpha)  # integer arithmetic is exact
        return result if into is None else into.copy_(result)
    ct = compute_dtype(dtype)
    a = scalar(op, "alpha", alpha, ct)
    x, y = prep(op, [self, other], dtype)
    shape = shape_of(self, other)
    out = output_array(op, into, dtype, shape, [x, y])
    cmp.map_axpy(x, y, a if sign > 0 else -a, out)
    return result_tensor(out, into, dtype, shape)


def add_tensor(self: torch.Tensor, other: torch.Tensor, *, alpha: Any = 1) -> torch.Tensor:
    """self + alpha*other: the vendor add when alpha == 1 (one IEEE addition, exact by C2),
    else ``fma(alpha, other, self)`` in the compute dtype."""
    if is_one(alpha):
        return torch.ops.aten.add.Tensor(self, other)
    return _axpy("add", self, other, alpha, 1)


def sub_tensor(self: torch.Tensor, other: torch.Tensor, *, alpha: Any = 1) -> torch.Tensor:
    """self - alpha*other: the vendor sub when alpha == 1, else ``fma(-alpha, other, self)``."""
    if is_one(alpha):
        return torch.ops.aten.sub.Tensor(self, other)
    return _axpy("sub", self, other, alpha, -1)


def _ternary(
    op: str, fn: Callable[..., None], abc: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    value: Any, into: torch.Tensor | None = None,
) -> torch.Tensor:
    a, b, c = abc
    dtype = float_result(op, meta_dtype(getattr(torch.ops.aten, op).default, a, b, c))
    ct = compute_dtype(dtype)
    v = scalar(op, "value", value, ct)
    x, y, z = prep(op, [a, b, c], dtype)
    shape = shape_of(a, b, c)
    out = output_array(op, into, dtype, shape, [x, y, z])
    fn(x, y, z, v, out)
    return result_tensor(out, into, dtype, shape)


def addcmul(
    self: torch.Tensor, tensor1: torch.Tensor, tensor2: torch.Tensor, *, value: Any = 1
) -> torch.Tensor:
    """``fma(value * tensor1, tensor2, self)``."""
    return _ternary("addcmul", cmp.map_addcmul, (self, tensor1, tensor2), value)


def addcdiv(
    self: torch.Tensor, tensor1: torch.Tensor, tensor2: torch.Tensor, *, value: Any = 1
) -> torch.Tensor:
    """``fma(value, tensor1 / tensor2, self)``."""
    return _ternary("addcdiv", cmp.map_addcdiv, (self, tensor1, tensor2), value)


def _lerp(
    self: torch.Tensor, end: torch.Tensor, w: torch.Tensor, dtype: torch.dtype,
    into: torch.Tensor | None = None,
) -> torch.Tensor:
    ct = compute_dtype(dtype)
    x, e = prep("lerp", [self, end], dtype)
    shape = shape_of(self, end)
    if w.numel() == 1 and w.dim() == 0:
        wa = w.to(ct).reshape(1).numpy()
    else:
        shape = torch.broadcast_shapes(shape, w.shape)
        x, e, wa = prep("lerp", [self, end, w], dtype)
    out = output_array("lerp", into, dtype, shape, [x, e, wa])
    one = np.float32(1) if ct == torch.float32 else np.float64(1)
    cmp.map_lerp(x, e, wa, one, out)
    return result_tensor(out, into, dtype, shape)


def _lerp_scalar(
    self: torch.Tensor, end: torch.Tensor, weight: Any, into: torch.Tensor | None
) -> torch.Tensor:
    if end.dtype != self.dtype:  # torch's lerp promotes nothing (its meta function's check)
        raise OperandDtypeError(
            f"lerp: expected dtype {self.dtype} for `end` (the dtype of self), got {end.dtype}"
        )
    dtype = float_result("lerp", self.dtype)
    w = torch.tensor(float(scalar("lerp", "weight", weight, torch.float64)), dtype=torch.float64)
    return _lerp(self, end, w.to(compute_dtype(dtype)), dtype, into)


def lerp_scalar(self: torch.Tensor, end: torch.Tensor, weight: Any) -> torch.Tensor:
    """PyTorch's two-sided lerp with explicit fma (spec "lerp"); weight rounded to compute type."""
    return _lerp_scalar(self, end, weight, None)


def _lerp_tensor(
    self: torch.Tensor, end: torch.Tensor, weight: torch.Tensor, into: torch.Tensor | None
) -> torch.Tensor:
    dtype = float_result("lerp", meta_dtype(torch.ops.aten.lerp.Tensor, self, end, weight))
    if weight.dim() == 0:
        return _lerp(self, end, weight.detach().to(dtype).to(compute_dtype(dtype)), dtype, into)
    return _lerp(self, end, weight.detach(), dtype, into)


def lerp_tensor(self: torch.Tensor, end: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """lerp with a tensor weight (spec "lerp")."""
    return _lerp_tensor(self, end, weight, None)


# ---------------------------------------------------------------------------- in-place twins
# (args, kwargs) of add_, sub_, addcmul_, addcdiv_, lerp_: the functional kernel, written
# straight into args[0] where output_array allows (an optimizer's state updates), else copied in.


def _axpy_in_place(op: str, sign: int) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    def in_place(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
        alpha = kwargs.get("alpha", 1)
        if is_one(alpha):
            return None  # the vendor op (the mode's general path)
        self, other = args
        return _axpy(op, self, other, alpha, sign, into=self)

    return in_place


def _ternary_in_place(
    op: str, fn: Callable[..., None]
) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    def in_place(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        self, tensor1, tensor2 = args
        return _ternary(op, fn, (self, tensor1, tensor2), kwargs.get("value", 1), into=self)

    return in_place


def _lerp_in_place(
    lerp: Callable[..., torch.Tensor],
) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    def in_place(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        self, end, weight = args
        return lerp(self, end, weight, self)

    return in_place


IN_PLACE_CASES: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], Any]] = {
    "aten.add.Tensor": _axpy_in_place("add", 1),
    "aten.sub.Tensor": _axpy_in_place("sub", -1),
    "aten.addcmul.default": _ternary_in_place("addcmul", cmp.map_addcmul),
    "aten.addcdiv.default": _ternary_in_place("addcdiv", cmp.map_addcdiv),
    "aten.lerp.Scalar": _lerp_in_place(_lerp_scalar),
    "aten.lerp.Tensor": _lerp_in_place(_lerp_tensor),
}


ATEN_KERNELS: dict[str, Callable[..., object]] = {
    "aten.add.Tensor": add_tensor,
    "aten.sub.Tensor": sub_tensor,
    "aten.addcmul.default": addcmul,
    "aten.addcdiv.default": addcdiv,
    "aten.lerp.Scalar": lerp_scalar,
    "aten.lerp.Tensor": lerp_tensor,
}
