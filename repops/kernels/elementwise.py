"""aten kernels for elementwise math (spec/elementwise.md): each function takes exactly the
arguments of the aten overload it implements and returns what that overload returns.

Dtypes (SPEC.md C1): float16/bfloat16/float32 compute in binary32 and round once to the output
dtype. The transcendental functions of repops.math are binary32 functions; float64 inputs to
them raise UnsupportedInputError (naming op and dtype) rather than silently losing precision.
The compound ops (add/sub with alpha, addcmul, addcdiv, lerp, *_backward formulas without a
transcendental, leaky_relu) also run in binary64. Integer and bool inputs of the unary
functions are first converted to float32, as torch promotes them. Integer results of
add/sub/pow go to the vendor kernel (integer arithmetic is exact).

Type promotion and broadcasting follow torch (``torch.result_type``, ``torch.broadcast_shapes``):
operands are converted to the result dtype (a rounding torch does too), then widened to the
compute dtype, broadcast and made contiguous (exact copies), and the flat kernel runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from repops._tensor import compute_dtype, from_compute
from repops.errors import UnsupportedInputError
from repops.kernels import elementwise_compound as cmp
from repops.kernels.elementwise_maps import BINARY_MAPS, UNARY_MAPS

_LOW_FLOATS = (torch.float16, torch.bfloat16, torch.float32)


def _prep(op: str, tensors: list[torch.Tensor], out_dtype: torch.dtype) -> list[np.ndarray]:
    """Convert to out_dtype, widen to the compute dtype, broadcast, flatten (all exact)."""
    for t in tensors:
        if t.device.type != "cpu":
            raise UnsupportedInputError(f"{op}: the numba backend runs on CPU, got {t.device}")
        if t.is_complex():
            raise UnsupportedInputError(f"{op}: complex input ({t.dtype}) is not supported")
    ct = compute_dtype(out_dtype)
    shape = _shape(*tensors)
    # The common case (an optimizer's state, a gradient): a result computed in its own dtype
    # from operands of that dtype, one shape, contiguous; the conversions below would return
    # them unchanged, at 10-15 us each.
    if out_dtype == ct and all(
            t.dtype == ct and t.shape == shape and t.is_contiguous() for t in tensors):
        return [t.detach().numpy().reshape(-1) for t in tensors]
    conv = [t.detach().to(out_dtype).to(ct) for t in tensors]
    return [t.expand(shape).contiguous().numpy().reshape(-1) for t in conv]


def _meta_dtype(op: Any, *tensors: torch.Tensor) -> torch.dtype:
    """torch's own result dtype for ``op`` (type promotion over >2 operands), from meta tensors
    (100 us), or the operands' one floating dtype, which promotes to itself."""
    dtype = tensors[0].dtype
    if dtype.is_floating_point and all(t.dtype == dtype for t in tensors):
        return dtype
    return op(*(t.to("meta") for t in tensors)).dtype


def _shape(*tensors: torch.Tensor) -> torch.Size:
    """The broadcast shape (torch's rules); operands of one shape skip torch's Python code."""
    shape = tensors[0].shape
    if all(t.shape == shape for t in tensors):
        return shape
    return torch.broadcast_shapes(*(t.shape for t in tensors))


def _float32_dtype(op: str, dtype: torch.dtype) -> torch.dtype:
    """Output dtype of a binary32-only function: low floats stay, integers promote to float32."""
    if dtype in _LOW_FLOATS:
        return dtype
    if dtype == torch.float64:
        raise UnsupportedInputError(
            f"{op}: float64 input is not supported (repops' {op} is a binary32 function; "
            "see repops/spec/elementwise.md)"
        )
    if dtype.is_complex:
        raise UnsupportedInputError(f"{op}: complex input ({dtype}) is not supported")
    return torch.float32


def _unary(op: str, key: str, self: torch.Tensor) -> torch.Tensor:
    out_dtype = _float32_dtype(op, self.dtype)
    (x,) = _prep(op, [self], out_dtype)
    out = np.empty_like(x)
    UNARY_MAPS[key](x, out)
    return from_compute(out.reshape(tuple(self.shape)), out_dtype)


def _binary_f32(op: str, key: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out_dtype = _float32_dtype(op, torch.result_type(a, b))
    xa, xb = _prep(op, [a, b], out_dtype)
    out = np.empty_like(xa)
    BINARY_MAPS[key](xa, xb, out)
    return from_compute(out.reshape(tuple(_shape(a, b))), out_dtype)


def _float_result(op: str, dtype: torch.dtype) -> torch.dtype:
    """Output dtype of a compound op: any float dtype (binary32 or binary64 compute)."""
    if not dtype.is_floating_point:
        raise UnsupportedInputError(f"{op}: needs floating tensors, got {dtype}")
    return dtype


def _scalar(op: str, name: str, value: Any, ct: torch.dtype) -> np.floating:
    """A Scalar argument rounded to the compute dtype (as torch's opmath does)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{op}: {name} must be a number, got a tensor of shape {value.shape}")
        value = value.item()
    if isinstance(value, complex):
        raise UnsupportedInputError(f"{op}: complex {name} is not supported")
    if not isinstance(value, int | float | bool):
        raise ValueError(f"{op}: {name} must be a number, got {type(value).__name__}")
    return np.float32(value) if ct == torch.float32 else np.float64(value)


def _is_one(v: Any) -> bool:
    return not isinstance(v, torch.Tensor) and v == 1 and not isinstance(v, complex)


# ------------------------------------------------------------------------- unary functions


def exp(self: torch.Tensor) -> torch.Tensor:
    return _unary("exp", "exp", self)


def expm1(self: torch.Tensor) -> torch.Tensor:
    return _unary("expm1", "expm1", self)


def log(self: torch.Tensor) -> torch.Tensor:
    return _unary("log", "log", self)


def log1p(self: torch.Tensor) -> torch.Tensor:
    return _unary("log1p", "log1p", self)


def tanh(self: torch.Tensor) -> torch.Tensor:
    return _unary("tanh", "tanh", self)


def sigmoid(self: torch.Tensor) -> torch.Tensor:
    return _unary("sigmoid", "sigmoid", self)


def silu(self: torch.Tensor) -> torch.Tensor:
    return _unary("silu", "silu", self)


def erf(self: torch.Tensor) -> torch.Tensor:
    return _unary("erf", "erf", self)


def sin(self: torch.Tensor) -> torch.Tensor:
    return _unary("sin", "sin", self)


def cos(self: torch.Tensor) -> torch.Tensor:
    return _unary("cos", "cos", self)


def rsqrt(self: torch.Tensor) -> torch.Tensor:
    return _unary("rsqrt", "rsqrt", self)


def _gelu_key(approximate: str) -> str:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return "gelu_erf" if approximate == "none" else "gelu_tanh"


def gelu(self: torch.Tensor, *, approximate: str = "none") -> torch.Tensor:
    return _unary("gelu", _gelu_key(approximate), self)


def gelu_backward(
    grad_output: torch.Tensor, self: torch.Tensor, *, approximate: str = "none"
) -> torch.Tensor:
    return _binary_f32("gelu_backward", _gelu_key(approximate) + "_backward", grad_output, self)


def silu_backward(grad_output: torch.Tensor, self: torch.Tensor) -> torch.Tensor:
    return _binary_f32("silu_backward", "silu_backward", grad_output, self)


# ------------------------------------------------------------------------------------ pow


#: Exponents whose pow has a closed formula that also covers pow's special cases (spec
#: elementwise.md §8 rule 7): the UNARY_MAPS key that computes it.
POW_SHORTCUTS: dict[float, str] = {
    1.0: "pow_identity", 2.0: "pow_square", 3.0: "pow_cube", -1.0: "pow_reciprocal",
    -2.0: "pow_inv_square", 0.5: "pow_sqrt",
}


def pow_tensor_tensor(self: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    dtype = torch.result_type(self, exponent)
    if not (dtype.is_floating_point or dtype.is_complex):
        return torch.ops.aten.pow.Tensor_Tensor(self, exponent)  # integer power: exact
    return _binary_f32("pow", "pow", self, exponent)


def pow_tensor_scalar(self: torch.Tensor, exponent: Any) -> torch.Tensor:
    if isinstance(exponent, complex):
        raise UnsupportedInputError("pow: complex exponent is not supported")
    dtype = torch.result_type(self, exponent)
    if not (dtype.is_floating_point or dtype.is_complex):
        return torch.ops.aten.pow.Tensor_Scalar(self, exponent)  # integer power: exact
    out_dtype = _float32_dtype("pow", dtype)
    exp_t = torch.tensor(exponent, dtype=torch.float64).to(out_dtype)
    shortcut = POW_SHORTCUTS.get(float(exp_t))
    if shortcut is not None:  # the general kernel's bits, in a loop that vectorises
        return _unary("pow", shortcut, self.to(out_dtype))
    return _binary_f32("pow", "pow", self.to(out_dtype), exp_t)


def pow_scalar(self: Any, exponent: torch.Tensor) -> torch.Tensor:
    if isinstance(self, complex):
        raise UnsupportedInputError("pow: complex base is not supported")
    dtype = torch.result_type(self, exponent)
    if not (dtype.is_floating_point or dtype.is_complex):
        return torch.ops.aten.pow.Scalar(self, exponent)
    out_dtype = _float32_dtype("pow", dtype)
    base = torch.tensor(self, dtype=torch.float64).to(out_dtype)
    return _binary_f32("pow", "pow", base, exponent.to(out_dtype))


# ---------------------------------------------------------------------------- compound ops


def _axpy(op: str, self: torch.Tensor, other: torch.Tensor, alpha: Any, sign: int) -> torch.Tensor:
    dtype = torch.result_type(self, other)
    if not dtype.is_floating_point:
        vendor = torch.ops.aten.add.Tensor if sign > 0 else torch.ops.aten.sub.Tensor
        return vendor(self, other, alpha=alpha)  # integer arithmetic is exact
    ct = compute_dtype(dtype)
    a = _scalar(op, "alpha", alpha, ct)
    x, y = _prep(op, [self, other], dtype)
    out = np.empty_like(x)
    cmp.map_axpy(x, y, a if sign > 0 else -a, out)
    return from_compute(out.reshape(tuple(_shape(self, other))), dtype)


def add_tensor(self: torch.Tensor, other: torch.Tensor, *, alpha: Any = 1) -> torch.Tensor:
    """self + alpha*other: the vendor add when alpha == 1 (one IEEE addition, exact by C2),
    else ``fma(alpha, other, self)`` in the compute dtype."""
    if _is_one(alpha):
        return torch.ops.aten.add.Tensor(self, other)
    return _axpy("add", self, other, alpha, 1)


def sub_tensor(self: torch.Tensor, other: torch.Tensor, *, alpha: Any = 1) -> torch.Tensor:
    """self - alpha*other: the vendor sub when alpha == 1, else ``fma(-alpha, other, self)``."""
    if _is_one(alpha):
        return torch.ops.aten.sub.Tensor(self, other)
    return _axpy("sub", self, other, alpha, -1)


def _ternary(
    op: str, fn: Callable[..., None], abc: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    value: Any,
) -> torch.Tensor:
    a, b, c = abc
    dtype = _float_result(op, _meta_dtype(getattr(torch.ops.aten, op).default, a, b, c))
    ct = compute_dtype(dtype)
    v = _scalar(op, "value", value, ct)
    x, y, z = _prep(op, [a, b, c], dtype)
    out = np.empty_like(x)
    fn(x, y, z, v, out)
    return from_compute(out.reshape(tuple(_shape(a, b, c))), dtype)


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
    self: torch.Tensor, end: torch.Tensor, w: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    ct = compute_dtype(dtype)
    x, e = _prep("lerp", [self, end], dtype)
    shape = _shape(self, end)
    if w.numel() == 1 and w.dim() == 0:
        wa = w.to(ct).reshape(1).numpy()
    else:
        shape = torch.broadcast_shapes(shape, w.shape)
        x, e, wa = _prep("lerp", [self, end, w], dtype)
    out = np.empty_like(x)
    one = np.float32(1) if ct == torch.float32 else np.float64(1)
    cmp.map_lerp(x, e, wa, one, out)
    return from_compute(out.reshape(tuple(shape)), dtype)


def lerp_scalar(self: torch.Tensor, end: torch.Tensor, weight: Any) -> torch.Tensor:
    """PyTorch's two-sided lerp with explicit fma (spec "lerp"); weight rounded to compute type."""
    dtype = _float_result("lerp", torch.result_type(self, end))
    w = torch.tensor(float(_scalar("lerp", "weight", weight, torch.float64)), dtype=torch.float64)
    return _lerp(self, end, w.to(compute_dtype(dtype)), dtype)


def lerp_tensor(self: torch.Tensor, end: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    dtype = _float_result("lerp", _meta_dtype(torch.ops.aten.lerp.Tensor, self, end, weight))
    if weight.dim() == 0:
        return _lerp(self, end, weight.detach().to(dtype).to(compute_dtype(dtype)), dtype)
    return _lerp(self, end, weight.detach(), dtype)


def _backward_formula(
    op: str, fn: Callable[..., None], grad_output: torch.Tensor, output: torch.Tensor
) -> torch.Tensor:
    dtype = _float_result(op, torch.result_type(grad_output, output))
    ct = compute_dtype(dtype)
    g, y = _prep(op, [grad_output, output], dtype)
    out = np.empty_like(g)
    fn(g, y, np.float32(1) if ct == torch.float32 else np.float64(1), out)
    return from_compute(out.reshape(tuple(_shape(grad_output, output))), dtype)


def sigmoid_backward(grad_output: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``(g * (1 - y)) * y``."""
    return _backward_formula("sigmoid_backward", cmp.map_sigmoid_backward, grad_output, output)


def tanh_backward(grad_output: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``g * fma(-y, y, 1)``."""
    return _backward_formula("tanh_backward", cmp.map_tanh_backward, grad_output, output)


def leaky_relu(self: torch.Tensor, negative_slope: Any = 0.01) -> torch.Tensor:
    dtype = _float_result("leaky_relu", self.dtype)
    (x,) = _prep("leaky_relu", [self], dtype)
    out = np.empty_like(x)
    cmp.map_leaky_relu(x, _scalar("leaky_relu", "negative_slope", negative_slope,
                                  compute_dtype(dtype)), out)
    return from_compute(out.reshape(tuple(self.shape)), dtype)


def elu(
    self: torch.Tensor, alpha: Any = 1, scale: Any = 1, input_scale: Any = 1
) -> torch.Tensor:
    """binary64 inside (spec "elu"); float64 input unsupported (binary32 expm1 accuracy)."""
    dtype = _float32_dtype("elu", self.dtype)
    (x,) = _prep("elu", [self], dtype)
    out = np.empty_like(x)
    f = torch.float64
    a = float(_scalar("elu", "alpha", alpha, f))
    s = float(_scalar("elu", "scale", scale, f))
    cmp.map_elu_f32(x, a, s, float(_scalar("elu", "input_scale", input_scale, f)), out)
    return from_compute(out.reshape(tuple(self.shape)), dtype)


def softplus(self: torch.Tensor, beta: Any = 1, threshold: Any = 20) -> torch.Tensor:
    """binary64 inside (spec "softplus")."""
    dtype = _float32_dtype("softplus", self.dtype)
    b = float(_scalar("softplus", "beta", beta, torch.float64))
    if b == 0:
        raise ValueError("softplus: beta must be nonzero")
    (x,) = _prep("softplus", [self], dtype)
    out = np.empty_like(x)
    thr = float(_scalar("softplus", "threshold", threshold, torch.float64))
    cmp.map_softplus_f32(x, b, thr, out)
    return from_compute(out.reshape(tuple(self.shape)), dtype)


ATEN_KERNELS: dict[str, Callable[..., object]] = {
    "aten.exp.default": exp,
    "aten.expm1.default": expm1,
    "aten.log.default": log,
    "aten.log1p.default": log1p,
    "aten.tanh.default": tanh,
    "aten.sigmoid.default": sigmoid,
    "aten.silu.default": silu,
    "aten.erf.default": erf,
    "aten.sin.default": sin,
    "aten.cos.default": cos,
    "aten.rsqrt.default": rsqrt,
    "aten.gelu.default": gelu,
    "aten.gelu_backward.default": gelu_backward,
    "aten.silu_backward.default": silu_backward,
    "aten.tanh_backward.default": tanh_backward,
    "aten.sigmoid_backward.default": sigmoid_backward,
    "aten.pow.Tensor_Scalar": pow_tensor_scalar,
    "aten.pow.Tensor_Tensor": pow_tensor_tensor,
    "aten.pow.Scalar": pow_scalar,
    "aten.add.Tensor": add_tensor,
    "aten.sub.Tensor": sub_tensor,
    "aten.addcmul.default": addcmul,
    "aten.addcdiv.default": addcdiv,
    "aten.lerp.Scalar": lerp_scalar,
    "aten.lerp.Tensor": lerp_tensor,
    "aten.leaky_relu.default": leaky_relu,
    "aten.elu.default": elu,
    "aten.softplus.default": softplus,
}
