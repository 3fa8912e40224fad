"""The one optimizer core: functional, out-of-place updates with a written per-element order.

Why functional: the same update runs in three places that must agree bit for bit -- the
optimizer classes (``repops.optim.SGD``/``Adam``/``AdamW``, which copy the results into their
parameters and state), verde jobs (whose state is a dict of tensors and whose step must be a
pure function ``state s-1 -> state s`` an arbiter can replay on shape-only tensors), and coded
training (which applies the update to a decoded gradient). Every function here takes tensors
and Python numbers, returns new tensors, mutates nothing, and uses only IEEE-exact aten ops
(one rounding per element: mul, add, sub, div, sqrt, neg, maximum, clone), so under
``repops.reproducible()`` each op is a traced node an arbiter can re-execute alone.

The orders are those of spec/dispatch.md section 5 (and of torch.optim's single-tensor paths up
to fma contraction, which repops never does). Hyperparameter arithmetic is binary64 Python
floats; powers ``beta**t`` are repeated multiplication left to right (:func:`float_power`),
never libm's ``pow``. The step number ``t`` is the 1-based Python int of the update.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import torch

_POWER_STRIDE = 1024
_powers: dict[float, list[float]] = {}
_powers_lock = threading.Lock()


def float_power(base: float, exponent: int) -> float:
    """``base**exponent`` in binary64 by the written order ((base*base)*base)*...: exponent-1
    correctly rounded multiplications, left to right (1.0 for exponent 0).

    Every 1024th partial product of the same sequence is cached per base, so a long job's
    bias corrections cost at most 1023 multiplications per step, with the same bits.
    """
    if isinstance(exponent, bool) or not isinstance(exponent, int) or exponent < 0:
        raise ValueError(f"exponent must be a non-negative int, got {exponent!r}")
    base = float(base)
    with _powers_lock:
        marks = _powers.setdefault(base, [1.0])
        while len(marks) <= exponent // _POWER_STRIDE:
            value = marks[-1]
            for _ in range(_POWER_STRIDE):
                value = value * base
            marks.append(value)
        result = marks[exponent // _POWER_STRIDE]
    for _ in range(exponent % _POWER_STRIDE):
        result = result * base
    return result


@dataclass(frozen=True)
class AdamCorrections:
    """Adam's bias corrections at step t: ``1 - b1**t`` and ``sqrt(1 - b2**t)`` (binary64)."""

    bias_correction1: float
    bias_correction2_sqrt: float

    @classmethod
    def at(cls, beta1: float, beta2: float, step: int) -> AdamCorrections:
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"step must be an int >= 1, got {step!r}")
        return cls(1.0 - float_power(beta1, step), math.sqrt(1.0 - float_power(beta2, step)))


def sgd_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    momentum_buffer: torch.Tensor | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One SGD update of one parameter; returns (new param, new momentum buffer or None).

    Order: ``g = -g`` (maximize); ``g = g + p*wd``; momentum: on the first update
    (``momentum_buffer is None``) ``b = clone(g)``, later ``b = b*momentum + g*(1-dampening)``
    (the product skipped when dampening is 0); nesterov ``g = g + b*momentum`` else ``g = b``;
    ``p = p - g*lr``.
    """
    g = torch.neg(grad) if maximize else grad
    if weight_decay != 0.0:
        g = torch.add(g, torch.mul(param, weight_decay))
    buf = None
    if momentum != 0.0:
        if momentum_buffer is None:
            buf = torch.clone(g)
        else:
            scaled = g if dampening == 0.0 else torch.mul(g, 1.0 - dampening)
            buf = torch.add(torch.mul(momentum_buffer, momentum), scaled)
        g = torch.add(g, torch.mul(buf, momentum)) if nesterov else buf
    return torch.sub(param, torch.mul(g, lr)), buf


def adam_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    max_exp_avg_sq: torch.Tensor | None,
    *,
    corrections: AdamCorrections,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    amsgrad: bool = False,
    maximize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One Adam (``decoupled=False``) or AdamW update of one parameter.

    Returns (new param, new exp_avg, new exp_avg_sq, new max_exp_avg_sq or None). Order:
    ``g = -g`` (maximize); AdamW ``p = p*(1 - lr*wd)`` / Adam ``g = g + p*wd``;
    ``m = m*b1 + g*(1-b1)``; ``v = v*b2 + (g*g)*(1-b2)``; amsgrad ``vm = max(vm, v)``, u = vm
    else u = v; ``d = sqrt(u)/sqrt(bc2) + eps``; ``p = p - (m/d)*(lr/bc1)``.
    """
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError("amsgrad needs a max_exp_avg_sq tensor")
    g = torch.neg(grad) if maximize else grad
    p = param
    if weight_decay != 0.0:
        if decoupled:
            p = torch.mul(p, 1.0 - lr * weight_decay)
        else:
            g = torch.add(g, torch.mul(p, weight_decay))
    m = torch.add(torch.mul(exp_avg, beta1), torch.mul(g, 1.0 - beta1))
    v = torch.add(torch.mul(exp_avg_sq, beta2), torch.mul(torch.mul(g, g), 1.0 - beta2))
    vmax = torch.maximum(max_exp_avg_sq, v) if amsgrad and max_exp_avg_sq is not None else None
    u = vmax if vmax is not None else v
    denom = torch.add(torch.div(torch.sqrt(u), corrections.bias_correction2_sqrt), eps)
    step_size = lr / corrections.bias_correction1
    new_p = torch.sub(p, torch.mul(torch.div(m, denom), step_size))
    return new_p, m, v, vmax


def check_clip_arguments(max_norm: float, norm_type: float) -> None:
    """ValueError unless ``max_norm`` is a non-negative number and ``norm_type`` a number."""
    if isinstance(max_norm, bool) or not isinstance(max_norm, int | float) or max_norm < 0:
        raise ValueError(f"max_norm must be a non-negative number, got {max_norm!r}")
    if isinstance(norm_type, bool) or not isinstance(norm_type, int | float):
        raise ValueError(f"norm_type must be a number, got {norm_type!r}")


def clip_coefficient(
    grads: list[torch.Tensor], max_norm: float, norm_type: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first part of :func:`clip_grad_norms`: (coef, total norm before clipping), 0-dim.

    Order: ``n_i = vector_norm(g_i)`` per gradient, ``total = vector_norm(stack(n))``,
    ``coef = clamp(full(max_norm) / (total + 1e-6), max=1)``. ``grads`` must not be empty.
    """
    check_clip_arguments(max_norm, norm_type)
    if not grads:
        raise ValueError("clip_coefficient needs at least one gradient")
    norms = [torch.linalg.vector_norm(g, float(norm_type)) for g in grads]
    total = torch.linalg.vector_norm(torch.stack(norms), float(norm_type))
    coef = torch.div(torch.full_like(total, float(max_norm)), torch.add(total, 1e-6))
    return torch.clamp(coef, max=1.0), total


def clip_grad_norms(
    grads: list[torch.Tensor], max_norm: float, norm_type: float = 2.0
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Global-norm clipping, out of place: (scaled gradients, total norm before clipping).

    Order: :func:`clip_coefficient`, then ``g_i = g_i * coef``. No data-dependent branch, so
    a shape-only trace has the same ops as a real one.
    """
    if not grads:
        check_clip_arguments(max_norm, norm_type)
        return [], torch.zeros(())
    coef, total = clip_coefficient(grads, max_norm, norm_type)
    return [torch.mul(g, coef) for g in grads], total
