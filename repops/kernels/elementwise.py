"""aten kernels for elementwise math (spec/elementwise.md): each function takes exactly the
arguments of the aten overload it implements and returns what that overload returns.

Dtypes (SPEC.md C1): float16/bfloat16/float32 compute in binary32 and round once to the output
dtype. The transcendental functions of repops.math are binary32 functions; float64 inputs to
them raise UnsupportedInputError (naming op and dtype) rather than silently losing precision.
The *_backward formulas without a transcendental and leaky_relu also run in binary64 (so do
the compound ops of :mod:`repops.kernels.compound_ops`). Integer and bool inputs of the unary
functions are first converted to float32, as torch promotes them. Integer results of pow go to
the vendor kernel (integer arithmetic is exact). Operands are prepared as
:mod:`repops.kernels._elementwise_args` describes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from repops._tensor import compute_dtype, from_compute
from repops.errors import UnsupportedInputError
from repops.kernels import elementwise_compound as cmp
from repops.kernels._buffers import reusable_empty_like
from repops.kernels._elementwise_args import float_result, prep, scalar, shape_of
from repops.kernels.elementwise_maps import BINARY_MAPS, UNARY_MAPS

_LOW_FLOATS = (torch.float16, torch.bfloat16, torch.float32)


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
    (x,) = prep(op, [self], out_dtype)
    out = reusable_empty_like(x)
    UNARY_MAPS[key](x, out)
    return from_compute(out.reshape(tuple(self.shape)), out_dtype)


def _binary_f32(op: str, key: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out_dtype = _float32_dtype(op, torch.result_type(a, b))
    xa, xb = prep(op, [a, b], out_dtype)
    out = reusable_empty_like(xa)
    BINARY_MAPS[key](xa, xb, out)
    return from_compute(out.reshape(tuple(shape_of(a, b))), out_dtype)


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


def _backward_formula(
    op: str, fn: Callable[..., None], grad_output: torch.Tensor, output: torch.Tensor
) -> torch.Tensor:
    dtype = float_result(op, torch.result_type(grad_output, output))
    ct = compute_dtype(dtype)
    g, y = prep(op, [grad_output, output], dtype)
    out = reusable_empty_like(g)
    fn(g, y, np.float32(1) if ct == torch.float32 else np.float64(1), out)
    return from_compute(out.reshape(tuple(shape_of(grad_output, output))), dtype)


def sigmoid_backward(grad_output: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``(g * (1 - y)) * y``."""
    return _backward_formula("sigmoid_backward", cmp.map_sigmoid_backward, grad_output, output)


def tanh_backward(grad_output: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``g * fma(-y, y, 1)``."""
    return _backward_formula("tanh_backward", cmp.map_tanh_backward, grad_output, output)


def leaky_relu(self: torch.Tensor, negative_slope: Any = 0.01) -> torch.Tensor:
    dtype = float_result("leaky_relu", self.dtype)
    (x,) = prep("leaky_relu", [self], dtype)
    out = reusable_empty_like(x)
    cmp.map_leaky_relu(x, scalar("leaky_relu", "negative_slope", negative_slope,
                                  compute_dtype(dtype)), out)
    return from_compute(out.reshape(tuple(self.shape)), dtype)


def elu(
    self: torch.Tensor, alpha: Any = 1, scale: Any = 1, input_scale: Any = 1
) -> torch.Tensor:
    """binary64 inside (spec "elu"); float64 input unsupported (binary32 expm1 accuracy)."""
    dtype = _float32_dtype("elu", self.dtype)
    (x,) = prep("elu", [self], dtype)
    out = reusable_empty_like(x)
    f = torch.float64
    a = float(scalar("elu", "alpha", alpha, f))
    s = float(scalar("elu", "scale", scale, f))
    cmp.map_elu_f32(x, a, s, float(scalar("elu", "input_scale", input_scale, f)), out)
    return from_compute(out.reshape(tuple(self.shape)), dtype)


def softplus(self: torch.Tensor, beta: Any = 1, threshold: Any = 20) -> torch.Tensor:
    """binary64 inside (spec "softplus")."""
    dtype = _float32_dtype("softplus", self.dtype)
    b = float(scalar("softplus", "beta", beta, torch.float64))
    if b == 0:
        raise ValueError("softplus: beta must be nonzero")
    (x,) = prep("softplus", [self], dtype)
    out = reusable_empty_like(x)
    thr = float(scalar("softplus", "threshold", threshold, torch.float64))
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
    "aten.leaky_relu.default": leaky_relu,
    "aten.elu.default": elu,
    "aten.softplus.default": softplus,
}
