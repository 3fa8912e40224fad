"""numpy/torch helpers shared by the codes: widen to float64, combine with real coefficients.

Coded computation mixes data with real coefficients (cyclic repetition, Berrut encoders and
decoders, Strassen-like sub-products). Coefficients are computed once in float64 numpy; the data
may be numpy arrays or torch tensors of any float dtype on any device. Combinations are formed in
float64 (so the code's own arithmetic adds no error beyond one final rounding) and returned in
the dtype (and device) of the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor


def is_torch(value: Array) -> bool:
    """Whether ``value`` is a torch tensor (checked without importing torch)."""
    return type(value).__module__.startswith("torch")


def widen(value: Array) -> Array:
    """The same values in float64, same array type (and device for torch)."""
    return value.double() if is_torch(value) else np.asarray(value, dtype=np.float64)


def narrow(value: Array, like: Array) -> Array:
    """``value`` cast back to ``like``'s dtype."""
    return value.to(like.dtype) if is_torch(value) else value.astype(np.asarray(like).dtype)


def to_numpy64(value: Array) -> np.ndarray:
    """A float64 numpy copy (for the small algebra done on the master side)."""
    if is_torch(value):
        return value.detach().to("cpu").double().numpy()
    return np.asarray(value, dtype=np.float64)


def check_same_kind(name: str, values: Sequence[Array]) -> None:
    """Every value is a float array of the same type and shape as the first."""
    if not values:
        raise ValueError(f"{name}: need at least one array")
    first = values[0]
    torch_first = is_torch(first)
    for i, v in enumerate(values):
        if is_torch(v) != torch_first or not (torch_first or isinstance(v, np.ndarray)):
            raise ValueError(f"{name}[{i}]: expected a {type(first).__name__} like {name}[0], "
                             f"got {type(v).__name__}")
        if tuple(v.shape) != tuple(first.shape):
            raise ValueError(f"{name}[{i}] has shape {tuple(v.shape)}, {name}[0] has "
                             f"{tuple(first.shape)}")
        if not _is_float(v):
            raise ValueError(f"{name}[{i}] must have a floating dtype, got {v.dtype}")


def combine(coefficients: np.ndarray, values: Sequence[Array]) -> list[Array]:
    """``out[r] = sum_c coefficients[r, c] * values[c]``, in float64, in ``values``' dtype.

    ``coefficients`` is a real ``(rows, len(values))`` matrix; ``values`` are same-shaped arrays.
    """
    coeffs = np.asarray(coefficients, dtype=np.float64)
    if coeffs.ndim != 2 or coeffs.shape[1] != len(values):
        raise ValueError(f"coefficients must be (rows, {len(values)}), got {coeffs.shape}")
    first = values[0]
    if is_torch(first):
        import torch

        stacked = torch.stack([v.double() for v in values])
        mixed = torch.tensordot(torch.from_numpy(coeffs).to(stacked.device), stacked, dims=1)
        return [m.to(first.dtype) for m in mixed]
    stacked_np = np.stack([np.asarray(v, dtype=np.float64) for v in values])
    mixed_np = np.tensordot(coeffs, stacked_np, axes=1)
    return [m.astype(first.dtype) for m in mixed_np]


def stack(values: Sequence[Array]) -> Array:
    """Stack along a new leading axis, in the values' own array type."""
    if is_torch(values[0]):
        import torch

        return torch.stack(list(values))
    return np.stack(values)


def _is_float(value: Array) -> bool:
    if is_torch(value):
        return bool(value.dtype.is_floating_point)
    return np.issubdtype(value.dtype, np.floating)
