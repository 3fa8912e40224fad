"""Embedding backward without atomics (spec/reductions.md §11).

Why: the vendor kernels scatter-add gradient rows into the weight gradient, on GPUs with
atomics, so rows of a token that occurs several times are summed in whatever order threads
arrive. Here every weight row ``w`` is owned by one thread, which adds the gradient rows of the
positions holding ``w`` in increasing position order (the flattened index tensor, row-major).
The position lists come from a stable counting sort (exact integer work).
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import torch

from repops.errors import UnsupportedInputError
from repops.kernels._rows import float_compute, narrow, row_kernel, widen
from repops.math._bits import ieee_div


@row_kernel
def _embedding_rows(  # noqa: PLR0917 - fixed positional signature
    g: np.ndarray,
    order: np.ndarray,
    starts: np.ndarray,
    padding_idx: int,
    scale: bool,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    d = g.shape[1]
    for w in numba.prange(out.shape[0]):
        k0 = starts[w]
        k1 = starts[w + 1]
        if w == padding_idx or k0 == k1:
            for j in range(d):
                out[w, j] = 0.0
            continue
        for j in range(d):
            out[w, j] = -0.0
        for k in range(k0, k1):
            p = order[k]
            for j in range(d):
                out[w, j] = out[w, j] + g[p, j]
        if scale:
            cnt = out.dtype.type(k1 - k0)
            for j in range(d):
                out[w, j] = ieee_div(out[w, j], cnt)


def embedding_dense_backward(
    grad_output: torch.Tensor,
    indices: torch.Tensor,
    num_weights: int,
    padding_idx: int,
    scale_grad_by_freq: bool,
) -> torch.Tensor:
    """aten.embedding_dense_backward.default -> grad_weight ``(num_weights, D)``.

    Row ``w``: ``s = -0.0; s = s + g[p]`` for each position p with ``indices[p] == w`` in
    increasing p; then ``s / count(w)`` when ``scale_grad_by_freq``. Rows never indexed and the
    ``padding_idx`` row (if ``padding_idx >= 0``) are ``+0.0``.
    """
    ct = float_compute(grad_output, "embedding_dense_backward: grad_output")
    if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            "embedding_dense_backward: indices must be an int64/int32 tensor, got "
            f"{getattr(indices, 'dtype', type(indices).__name__)}"
        )
    if isinstance(num_weights, bool) or not isinstance(num_weights, int) or num_weights < 0:
        raise ValueError(
            f"embedding_dense_backward: num_weights must be an int >= 0, got {num_weights!r}"
        )
    if indices.device.type != "cpu":
        raise UnsupportedInputError(f"embedding_dense_backward: indices on {indices.device}")
    p = indices.numel()
    if tuple(grad_output.shape[:-1]) != tuple(indices.shape) or grad_output.dim() < 1:
        raise ValueError(
            f"embedding_dense_backward: grad_output shape {list(grad_output.shape)} must be "
            f"indices shape {list(indices.shape)} + [embedding_dim]"
        )
    d = grad_output.shape[-1]
    idx = indices.detach().reshape(-1).to(torch.int64).contiguous().numpy()
    if p and (idx.min() < 0 or idx.max() >= num_weights):
        bad = idx[(idx < 0) | (idx >= num_weights)][0]
        raise ValueError(
            f"embedding_dense_backward: index {int(bad)} is out of range for {num_weights} rows"
        )
    g = widen(grad_output, ct).reshape(p, d)
    order = np.argsort(idx, kind="stable").astype(np.int64)
    counts = np.bincount(idx, minlength=num_weights) if p else np.zeros(num_weights, np.int64)
    starts = np.zeros(num_weights + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    out = np.empty((num_weights, d), dtype=g.dtype)
    _embedding_rows(g, order, starts, int(padding_idx), bool(scale_grad_by_freq), out)
    return narrow(out, grad_output.dtype)


ATEN_KERNELS: dict[str, Callable[..., object]] = {
    "aten.embedding_dense_backward.default": embedding_dense_backward,
}
