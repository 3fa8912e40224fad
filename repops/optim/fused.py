"""The optimizer classes' fused updates: the functional update's bits in one in-place pass.

Why a separate path: :mod:`repops.optim.functional` is the update verde's jobs trace, one
aten op per step of the formula, and it stays the definition. Where nothing traces the ops
(the mode says so: :attr:`repops.dispatch.mode.ReproducibleMode.may_fuse`) and every tensor is
a plain contiguous binary32 CPU tensor, the optimizer classes run
:func:`repops.kernels.optim_updates.adam_update_in_place` instead, which performs the same IEEE
operations per element. Anything else (other dtypes, strides, amsgrad, shared memory) goes
the op-by-op way, so this path only ever changes the speed.
"""

from __future__ import annotations

import numpy as np
import torch

from repops.kernels.optim_updates import (
    DECOUPLED_DECAY,
    L2_DECAY,
    NO_DECAY,
    adam_update_in_place,
)
from repops.optim._common import share_memory
from repops.optim.functional import AdamCorrections

F32 = np.float32


def _plain_f32(tensors: tuple[torch.Tensor, ...]) -> list[np.ndarray] | None:
    """Flat numpy views of ``tensors`` when all are dense contiguous binary32 CPU tensors of one
    shape, without negation or conjugation bits, sharing no memory; else None."""
    shape = tensors[0].shape
    for t in tensors:
        if (t.dtype != torch.float32 or t.device.type != "cpu" or t.layout != torch.strided
                or t.shape != shape or not t.is_contiguous() or t.is_neg() or t.is_conj()):
            return None
    if share_memory(tensors):
        return None
    return [t.detach().numpy().reshape(-1) for t in tensors]


def fused_adam_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    *,
    corrections: AdamCorrections,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    maximize: bool,
) -> bool:
    """``adam_update`` (amsgrad off) written into ``param``, ``exp_avg`` and ``exp_avg_sq``;
    False, with nothing written, where the tensors are not plain binary32 ones.

    Each Python float below is the one the op sequence hands its op, rounded to binary32 as
    that op rounds it. The writes bypass the dispatcher, so the version counters are bumped
    here, as an in-place op would (autograd then refuses a stale saved tensor, as with torch's
    own optimizers).
    """
    arrays = _plain_f32((param, grad, exp_avg, exp_avg_sq))
    if arrays is None:
        return False
    if weight_decay == 0.0:
        kind, decay = NO_DECAY, 0.0
    elif decoupled:
        kind, decay = DECOUPLED_DECAY, 1.0 - lr * weight_decay
    else:
        kind, decay = L2_DECAY, weight_decay
    p, g, m, v = arrays
    with np.errstate(over="ignore"):  # a scalar beyond binary32 rounds to inf, as torch's does
        scalars = [F32(x) for x in (
            decay, beta1, 1.0 - beta1, beta2, 1.0 - beta2, corrections.bias_correction2_sqrt,
            eps, lr / corrections.bias_correction1,
        )]
    if p.size:
        adam_update_in_place(p, g, m, v, kind, *scalars, bool(maximize))
    for t in (param, exp_avg, exp_avg_sq):
        torch.autograd.graph.increment_version(t)
    return True
