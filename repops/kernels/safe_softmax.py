"""aten._safe_softmax: softmax whose fully masked rows are zeros instead of NaN.

torch's math attention path (reached with attention dropout, e.g. GPT-2 and BERT in training)
calls it so that a query row whose scores are all ``-inf`` yields zero probabilities. Defined
in repops/spec/reductions.md: the row is the repops softmax of the input (converted to
``dtype`` first when given, one RNE rounding), and every element of a row whose inputs are all
``-inf`` is replaced by ``+0.0`` — a selection, exact by construction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from repops.kernels.softmax import softmax


def safe_softmax(self: torch.Tensor, dim: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """aten._safe_softmax.default (see the module docstring)."""
    x = self if dtype is None or dtype == self.dtype else self.to(dtype)
    out = softmax(x, dim, False)
    fully_masked = torch.eq(x, float("-inf")).all(dim=dim, keepdim=True)
    return out.masked_fill(fully_masked, 0.0)


ATEN_KERNELS: dict[str, Callable[..., object]] = {
    "aten._safe_softmax.default": safe_softmax,
}
