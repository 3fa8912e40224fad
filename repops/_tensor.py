"""Moving data between torch tensors and the arrays numba kernels compute on.

SPEC.md (conventions) fixes the compute type: float16/bfloat16/float32 inputs are widened to
float32 (exact), float64 stays float64; results are rounded once to the output dtype with
round-to-nearest-even (torch's own conversion, which is exact IEEE rounding and the same on
every platform). Copies made here are exact (a copy never changes a bit), so they may be used
freely to bring any layout into the contiguous form a kernel expects.
"""

from __future__ import annotations

import numpy as np
import torch

from repops.errors import InPlaceCastError, UnsupportedInputError

_FLOAT_COMPUTE: dict[torch.dtype, torch.dtype] = {
    torch.float16: torch.float32,
    torch.bfloat16: torch.float32,
    torch.float32: torch.float32,
    torch.float64: torch.float64,
}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype SPEC.md computes in for inputs of ``dtype``."""
    try:
        return _FLOAT_COMPUTE[dtype]
    except KeyError:
        raise UnsupportedInputError(f"repops computes on floating tensors, got {dtype}") from None


def to_compute(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous numpy array of ``t`` widened to its compute dtype (exact; may copy)."""
    if t.device.type != "cpu":
        raise UnsupportedInputError(f"the numba backend runs on CPU tensors, got device {t.device}")
    ct = compute_dtype(t.dtype)
    return t.detach().to(ct).contiguous().numpy()


def from_compute(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A torch tensor of ``dtype`` from a compute array: the one rounding SPEC.md allows."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t if t.dtype == dtype else t.to(dtype)


def check_in_place_cast(op: str, result: torch.dtype, into: torch.Tensor) -> None:
    """Raise InPlaceCastError where torch's in-place rule forbids writing a ``result`` of
    this dtype into ``into`` (a floating result into an integer tensor), before anything is
    written."""
    if not torch.can_cast(result, into.dtype):
        raise InPlaceCastError(
            f"{op}: result type {result} can't be cast to the desired output type {into.dtype}")
