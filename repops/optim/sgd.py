"""repops.optim.SGD: stochastic gradient descent with a written per-element update order.

torch.optim.SGD's foreach and fused paths use multi-tensor kernels and its single-tensor path
may use ``add_(x, alpha=...)`` (a fused multiply-add on some CPUs, not on others). Here every
step is a sequence of aten ops that are each IEEE-exact (one rounding per element: mul, add
with alpha=1, sub, neg), run inside ``repops.reproducible()`` so a tracer records them as nodes
verde's arbiter can re-execute one at a time. The order (spec/dispatch.md section 5), for each
parameter p with gradient g, in parameter order; scalars are binary64 Python floats rounded
once to the parameter's compute dtype by the op:

    g  <- -g                                   (maximize only)
    g  <- g + (p * wd)                         (weight_decay != 0)
    b  <- clone(g)                             (momentum != 0, first step)
    b  <- (b * momentum) + (g * (1 - dampening))   (later steps; "* 1.0" skipped when dampening=0)
    g  <- g + (b * momentum)  if nesterov else  g <- b
    p  <- p - (g * lr)

The update is :func:`repops.optim.functional.sgd_update`, the same function verde's jobs run;
this class copies its results into the parameters and keeps the momentum buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from repops.optim._common import check_no_vendor_paths, reproducible_step
from repops.optim.functional import sgd_update


class SGD(torch.optim.Optimizer):
    """Drop-in for torch.optim.SGD (same constructor arguments and state_dict layout)."""

    def __init__(  # noqa: PLR0917 - torch.optim takes these positionally
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if isinstance(value, torch.Tensor) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a Python number, got {type(value).__name__}")
            if value < 0.0:
                raise ValueError(f"Invalid {name} value: {value}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        check_no_vendor_paths(foreach, fused, False, differentiable)
        defaults = {
            "lr": float(lr), "momentum": float(momentum), "dampening": float(dampening),
            "weight_decay": float(weight_decay), "nesterov": bool(nesterov),
            "maximize": bool(maximize), "foreach": None, "differentiable": False, "fused": None,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient, in the order of the module docstring."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with reproducible_step():
            for group in self.param_groups:
                lr, momentum = float(group["lr"]), float(group["momentum"])
                dampening, wd = float(group["dampening"]), float(group["weight_decay"])
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.is_sparse:
                        raise ValueError("repops.optim.SGD does not handle sparse gradients")
                    state = self.state[p]
                    new_p, buf = sgd_update(
                        p, p.grad, state.get("momentum_buffer"), lr=lr, momentum=momentum,
                        dampening=dampening, weight_decay=wd, nesterov=group["nesterov"],
                        maximize=group["maximize"],
                    )
                    p.copy_(new_p)
                    if buf is not None:
                        state["momentum_buffer"] = buf
        return loss
