"""Operands of the elementwise kernels: torch tensors to the flat compute arrays a kernel runs
on, torch's result dtype and shape, and the kernel's output (spec/elementwise.md; SPEC.md C1).

Type promotion and broadcasting follow torch (``torch.result_type``, ``torch.broadcast_shapes``):
operands are converted to the result dtype (a rounding torch does too), then widened to the
compute dtype, broadcast and made contiguous (exact copies), and the flat kernel runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from repops._tensor import check_in_place_cast, compute_dtype, from_compute
from repops.errors import UnsupportedInputError
from repops.kernels._buffers import reusable_empty


def prep(op: str, tensors: list[torch.Tensor], out_dtype: torch.dtype) -> list[np.ndarray]:
    """Convert to out_dtype, widen to the compute dtype, broadcast, flatten (all exact)."""
    for t in tensors:
        if t.device.type != "cpu":
            raise UnsupportedInputError(f"{op}: the numba backend runs on CPU, got {t.device}")
        if t.is_complex():
            raise UnsupportedInputError(f"{op}: complex input ({t.dtype}) is not supported")
    ct = compute_dtype(out_dtype)
    shape = shape_of(*tensors)
    # The common case (an optimizer's state, a gradient): a result computed in its own dtype
    # from operands of that dtype, one shape, contiguous; the conversions below would return
    # them unchanged, at 10-15 us each.
    if out_dtype == ct and all(
            t.dtype == ct and t.shape == shape and t.is_contiguous() for t in tensors):
        return [t.detach().numpy().reshape(-1) for t in tensors]
    conv = [t.detach().to(out_dtype).to(ct) for t in tensors]
    return [t.expand(shape).contiguous().numpy().reshape(-1) for t in conv]


def meta_dtype(op: Any, *tensors: torch.Tensor) -> torch.dtype:
    """torch's own result dtype for ``op`` (type promotion over >2 operands), from meta tensors
    (100 us), or the operands' one floating dtype, which promotes to itself."""
    dtype = tensors[0].dtype
    if dtype.is_floating_point and all(t.dtype == dtype for t in tensors):
        return dtype
    return op(*(t.to("meta") for t in tensors)).dtype


def shape_of(*tensors: torch.Tensor) -> torch.Size:
    """The broadcast shape (torch's rules); operands of one shape skip torch's Python code."""
    shape = tensors[0].shape
    if all(t.shape == shape for t in tensors):
        return shape
    return torch.broadcast_shapes(*(t.shape for t in tensors))


def output_array(
    op: str, into: torch.Tensor | None, dtype: torch.dtype, shape: torch.Size,
    inputs: list[np.ndarray],
) -> np.ndarray:
    """The kernel's flat output array: ``into``'s own elements when the result can be written
    there directly, else a new array. A result torch would not cast into ``into`` raises
    InPlaceCastError here, before the kernel runs.

    Directly means: ``into`` (the destination of an in-place op) has the result's dtype, which
    is its own compute dtype, and the result's shape, is contiguous, and no input overlaps it
    other than element for element (every kernel here computes each output element from the
    inputs' same element, so reading and writing one element in place is safe). The bits are
    those of computing a new tensor and copying it in; what is saved is that tensor's pages
    and the copy.
    """
    if into is not None:
        check_in_place_cast(op, dtype, into)
    if (into is not None and into.dtype == dtype and compute_dtype(dtype) == dtype
            and into.shape == shape and into.is_contiguous() and not into.is_neg()):
        out = into.detach().numpy().reshape(-1)
        start = out.ctypes.data
        if all(not np.may_share_memory(a, out) or (a.ctypes.data == start and a.size == out.size)
               for a in inputs):
            return out
    return reusable_empty((int(np.prod(shape)),), inputs[0].dtype)


def result_tensor(
    out: np.ndarray, into: torch.Tensor | None, dtype: torch.dtype, shape: torch.Size
) -> torch.Tensor:
    """The op's result from the kernel's output: ``into`` itself (written directly or by an
    exact copy) for an in-place op, else a new tensor of ``dtype``."""
    if into is not None and into.numel() and out.ctypes.data == into.data_ptr():
        return into
    result = from_compute(out.reshape(tuple(shape)), dtype)
    return result if into is None else into.copy_(result)


def float_result(op: str, dtype: torch.dtype) -> torch.dtype:
    """Output dtype of a compound op: any float dtype (binary32 or binary64 compute)."""
    if not dtype.is_floating_point:
        raise UnsupportedInputError(f"{op}: needs floating tensors, got {dtype}")
    return dtype


def scalar(op: str, name: str, value: Any, ct: torch.dtype) -> np.floating:
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


def is_one(v: Any) -> bool:
    return not isinstance(v, torch.Tensor) and v == 1 and not isinstance(v, complex)
