"""cumsum (spec/reductions.md §10): a running sum, strictly sequential in index order.

Why sequential rather than lanes: every prefix is an output, so a lane split would change what
each prefix means; ``y_k = y_{k-1} + x_k`` is the one order every backend can follow. Rows
(all other indices) are independent and run in parallel.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import torch

from repops.errors import UnsupportedInputError
from repops.kernels._rows import (
    float_compute,
    move_dim_last,
    normalize_dim,
    restore_dim,
    row_kernel,
)


@row_kernel
def _cumsum_rows(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in numba.prange(x.shape[0]):
        s = x.dtype.type(-0.0) if x.dtype.kind == "f" else x.dtype.type(0)
        for j in range(x.shape[1]):
            s = s + x[i, j]
            out[i, j] = s


def cumsum(self: torch.Tensor, dim: int, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """aten.cumsum.default: ``y_k = y_{k-1} + x_k`` along ``dim``, ``y_{-1} = -0.0``."""
    if not isinstance(self, torch.Tensor):
        raise ValueError(f"cumsum: self must be a torch.Tensor, got {type(self).__name__}")
    x = self.to(dtype) if dtype is not None and dtype != self.dtype else self
    if x.dtype.is_complex:
        raise UnsupportedInputError(f"cumsum: complex dtype {x.dtype} is not supported")
    d = normalize_dim(dim, x.dim())
    if x.dtype.is_floating_point:
        work, out_dtype = float_compute(x, "cumsum: self"), x.dtype
    else:
        work = out_dtype = torch.int64  # torch promotes bool/int to int64; integer sums are exact
    shape = list(x.shape)
    arr = move_dim_last(x, d, work)
    out = np.empty_like(arr)
    _cumsum_rows(arr, out)
    return restore_dim(out, shape, d, out_dtype)


ATEN_KERNELS: dict[str, Callable[..., object]] = {"aten.cumsum.default": cumsum}
