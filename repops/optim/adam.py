"""repops.optim.Adam and AdamW (Kingma & Ba 2015; decoupled weight decay: Loshchilov & Hutter
2019) with a written per-element update order.

torch.optim.Adam's paths differ in rounding (``lerp_`` for the first moment, ``addcmul_`` and
``addcdiv_`` that some CPUs fuse, foreach/fused kernels), so this is not a wrapper: each step is a
sequence of IEEE-exact aten ops (one rounding per element), run inside
``repops.reproducible()`` and traced as nodes verde's arbiter can re-execute. For parameter p
with gradient g at step t (t = 1, 2, ...), in parameter order (spec/dispatch.md section 5):

    g   <- -g                                        (maximize only)
    p   <- p * (1 - lr*wd)                           (AdamW, wd != 0)
    g   <- g + (p * wd)                              (Adam, wd != 0)
    m   <- (m * b1) + (g * (1 - b1))
    v   <- (v * b2) + ((g * g) * (1 - b2))
    vm  <- maximum(vm, v);  u <- vm  (amsgrad)   else  u <- v
    d   <- (sqrt(u) / sqrt(bc2)) + eps
    p   <- p - ((m / d) * (lr / bc1))

with bc1 = 1 - b1^t and bc2 = 1 - b2^t computed in binary64, b^t by repeated multiplication
(:func:`repops.optim.functional.float_power`; never libm pow), sqrt(bc2) by ``math.sqrt``
(correctly rounded). Python-float scalars are rounded once to the tensor's compute dtype by
the op that uses them. The update is :func:`repops.optim.functional.adam_update`, the same
function verde's jobs run; this class copies its results into the parameters and state.
Where nothing traces the ops and the tensors are plain binary32 ones, the class runs
:func:`repops.optim.fused.fused_adam_step` instead: the same bits in one pass, in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from repops.optim._common import check_no_vendor_paths, reproducible_step
from repops.optim.functional import AdamCorrections, adam_update
from repops.optim.fused import fused_adam_step


class _AdamBase(torch.optim.Optimizer):
    _decoupled: bool = False

    def __init__(  # noqa: PLR0917 - torch.optim takes these positionally
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
            if isinstance(value, torch.Tensor) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a Python number, got {type(value).__name__}")
            if value < 0.0:
                raise ValueError(f"Invalid {name} value: {value}")
        if len(betas) != 2 or not all(isinstance(b, (int, float)) for b in betas):
            raise ValueError(f"betas must be a pair of numbers, got {betas!r}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")
        check_no_vendor_paths(foreach, fused, capturable, differentiable)
        defaults = {
            "lr": float(lr), "betas": (float(betas[0]), float(betas[1])), "eps": float(eps),
            "weight_decay": float(weight_decay), "amsgrad": bool(amsgrad),
            "maximize": bool(maximize), "foreach": None, "capturable": False,
            "differentiable": False, "fused": None,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _step_count(state: dict[str, Any]) -> int:
        step = state.get("step", 0)
        if isinstance(step, torch.Tensor):  # a torch.optim state_dict stores a float tensor
            step = int(step.item())
        return int(step)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient, in the order of the module docstring."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with reproducible_step() as may_fuse:
            for group in self.param_groups:
                self._update_group(group, may_fuse)
        return loss

    def _update_group(self, group: dict[str, Any], may_fuse: bool) -> None:
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ValueError(f"{type(self).__name__} does not handle sparse gradients")
            state = self.state[p]
            if "exp_avg" not in state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format
                    )
            t = self._step_count(state) + 1
            state["step"] = t
            corrections = AdamCorrections.at(beta1, beta2, t)
            if may_fuse and not group["amsgrad"] and fused_adam_step(
                p, p.grad, state["exp_avg"], state["exp_avg_sq"], corrections=corrections,
                lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=wd,
                decoupled=self._decoupled, maximize=group["maximize"],
            ):
                continue
            new_p, m, v, vmax = adam_update(
                p, p.grad, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq"),
                corrections=corrections, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                weight_decay=wd, decoupled=self._decoupled, amsgrad=group["amsgrad"],
                maximize=group["maximize"],
            )
            p.copy_(new_p)
            state["exp_avg"].copy_(m)
            state["exp_avg_sq"].copy_(v)
            if vmax is not None:
                state["max_exp_avg_sq"].copy_(vmax)


class Adam(_AdamBase):
    """Drop-in for torch.optim.Adam (L2 weight decay added to the gradient)."""

    _decoupled = False


class AdamW(_AdamBase):
    """Drop-in for torch.optim.AdamW (decoupled weight decay; default weight_decay=1e-2)."""

    _decoupled = True

    def __init__(  # noqa: PLR0917 - torch.optim takes these positionally
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **kwargs)
