"""repops.optim.clip_grad_norm_: global-norm gradient clipping with a written order.

torch.nn.utils.clip_grad_norm_ groups tensors by device and dtype and calls ``_foreach_norm``
and ``_foreach_mul_``; here the order is written (spec/dispatch.md section 5):

    n_i   = linalg_vector_norm(g_i, ord)        per gradient, repops norm kernel (for ord=2:
                                                 LDOT of g_i with itself in logical order, sqrt)
    total = linalg_vector_norm(stack(n_0..n_{k-1}), ord)   across tensors in parameter order
    coef  = clamp(full(max_norm) / (total + 1e-6), max=1)
    g_i   = g_i * coef                           per gradient, in place

Every op is a repops kernel or IEEE-exact, and there is no data-dependent Python branch (the
clamp replaces ``if total > max_norm``), so a shape-only trace has the same ops as a real one.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from repops.optim._common import reproducible_step, share_memory
from repops.optim.functional import check_clip_arguments, clip_coefficient, clip_grad_norms


def clip_grad_norm_(
    parameters: torch.Tensor | Iterable[torch.Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> torch.Tensor:
    """Scale the gradients of ``parameters`` in place so their global norm is at most
    ``max_norm``; returns the global norm before clipping (a 0-dim tensor)."""
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    params = list(parameters)
    check_clip_arguments(max_norm, norm_type)
    grads = [p.grad for p in params if p.grad is not None]
    with torch.no_grad(), reproducible_step() as may_fuse:
        if not grads:
            return torch.zeros(())
        if may_fuse and not share_memory(grads):
            # nothing traces: scale in place (mul_ is mul's IEEE op), no copies; gradients
            # that share memory would be scaled twice, so they take the copying path
            coef, total = clip_coefficient(grads, max_norm, norm_type)
            _check_finite(total, norm_type, error_if_nonfinite)
            for g in grads:
                g.mul_(coef)
            return total
        clipped, total = clip_grad_norms(grads, max_norm, norm_type)
        _check_finite(total, norm_type, error_if_nonfinite)
        for g, scaled in zip(grads, clipped, strict=True):
            g.copy_(scaled)
    return total


def _check_finite(total: torch.Tensor, norm_type: float, error_if_nonfinite: bool) -> None:
    if error_if_nonfinite and not bool(torch.isfinite(total)):
        raise ValueError(
            f"The total norm of order {norm_type} for gradients is non-finite, so it cannot "
            "be clipped (error_if_nonfinite=True)"
        )
