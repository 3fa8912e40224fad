"""A job's optimizer: its settings, its state slots, and one update -- repops.optim's core.

Why repops' functional core (:mod:`repops.optim.functional`) and nothing of our own: the
optimizer step is part of the step graph a Verde dispute descends into (Verde, Arun et al.
2025, "augmented computational graph": forward, backward and optimizer ops), so it must be
written as ordinary aten ops an arbiter can re-execute one at a time; and a user who trains
the same model by hand with ``repops.optim.SGD``/``Adam``/``AdamW`` under
``repops.reproducible()`` must get the same bits as the verde job. One function computes both.

The step number ``t`` is the job's step index (a Python int): Adam's bias corrections at ``t``
and SGD's first update (``t == 1``: the momentum buffer becomes the gradient, as in
torch.optim) follow from it. The state is created eagerly at step 0 (zeros), so the state's
structure is the same at every step. ``clip_grad_norm`` > 0 clips the gradients' global 2-norm
before the update (``repops.optim.functional.clip_grad_norms``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from repops.optim.functional import AdamCorrections, adam_update, clip_grad_norms, sgd_update
from verde.protocol.jobs.errors import JobSpecError

_COMMON: dict[str, Any] = {"weight_decay": 0.0, "maximize": False, "clip_grad_norm": 0.0}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "nesterov": False, **_COMMON},
    "adam": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "amsgrad": False,
             **_COMMON},
    "adamw": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "amsgrad": False,
              **_COMMON, "weight_decay": 0.01},
}
_FRACTIONS = ("momentum", "dampening", "beta1", "beta2")
_NON_NEGATIVE = ("weight_decay", "eps", "clip_grad_norm")


def normalize_optimizer(settings: dict[str, Any]) -> dict[str, Any]:
    """Validate optimizer settings and fill defaults; raises ``JobSpecError`` naming the field."""
    name = settings.get("name")
    if name not in _DEFAULTS:
        raise JobSpecError(f"optimizer: name must be one of {sorted(_DEFAULTS)}, got {name!r}")
    allowed = set(_DEFAULTS[name]) | {"name"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise JobSpecError(f"optimizer {name}: unknown setting(s) {unknown}; "
                           f"known: {sorted(allowed - {'name'})}")
    out: dict[str, Any] = {"name": name}
    for key, default in _DEFAULTS[name].items():
        value = settings.get(key, default)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise JobSpecError(f"optimizer {name}: {key} must be true or false, got {value!r}")
            out[key] = value
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(
                value):
            raise JobSpecError(f"optimizer {name}: {key} must be a finite number, got {value!r}")
        value = float(value)
        if key == "lr" and value <= 0:
            raise JobSpecError(f"optimizer {name}: lr must be positive, got {value}")
        if key in _FRACTIONS and not 0.0 <= value < 1.0:
            raise JobSpecError(f"optimizer {name}: {key} must be in [0, 1), got {value}")
        if key in _NON_NEGATIVE and value < 0:
            raise JobSpecError(f"optimizer {name}: {key} must be >= 0, got {value}")
        out[key] = value
    if name == "sgd" and out["nesterov"] and (out["momentum"] == 0.0 or out["dampening"]):
        raise JobSpecError("optimizer sgd: nesterov needs a momentum and zero dampening")
    return out


def optimizer_slots(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """Names of the per-parameter state tensors this optimizer keeps."""
    if settings["name"] == "sgd":
        return ("momentum",) if settings["momentum"] else ()
    return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if settings["amsgrad"] else (
        "exp_avg", "exp_avg_sq")


def init_optimizer_state(
    settings: Mapping[str, Any], params: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Initial optimizer state: zeros per slot, keyed ``"<slot>/<param name>"``."""
    return {
        f"{slot}/{name}": torch.zeros_like(p, device=p.device)
        for slot in optimizer_slots(settings)
        for name, p in params.items()
    }


def optimizer_update(
    settings: Mapping[str, Any],
    params: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    step: int,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One optimizer step ``t = step`` (1-based); returns new (params, state), no mutation.

    Parameters are updated in the order of ``params``, each with
    ``repops.optim.functional.sgd_update`` / ``adam_update``.
    """
    name = settings["name"]
    if settings["clip_grad_norm"]:
        clipped, _ = clip_grad_norms([grads[k] for k in params], settings["clip_grad_norm"])
        grads = dict(zip(params, clipped, strict=True))
    common = {"lr": settings["lr"], "weight_decay": settings["weight_decay"],
              "maximize": settings["maximize"]}
    new_params: dict[str, torch.Tensor] = {}
    new_state: dict[str, torch.Tensor] = {}
    if name == "sgd":
        for key, p in params.items():
            buffer = state.get(f"momentum/{key}") if step > 1 else None
            new_params[key], buf = sgd_update(
                p, grads[key], buffer, momentum=settings["momentum"],
                dampening=settings["dampening"], nesterov=settings["nesterov"], **common)
            if buf is not None:
                new_state[f"momentum/{key}"] = buf
        return new_params, new_state
    corrections = AdamCorrections.at(settings["beta1"], settings["beta2"], step)
    for key, p in params.items():
        new_params[key], m, v, vmax = adam_update(
            p, grads[key], state[f"exp_avg/{key}"], state[f"exp_avg_sq/{key}"],
            state.get(f"max_exp_avg_sq/{key}"), corrections=corrections,
            beta1=settings["beta1"], beta2=settings["beta2"], eps=settings["eps"],
            decoupled=name == "adamw", amsgrad=settings["amsgrad"], **common)
        new_state[f"exp_avg/{key}"] = m
        new_state[f"exp_avg_sq/{key}"] = v
        if vmax is not None:
            new_state[f"max_exp_avg_sq/{key}"] = vmax
    return new_params, new_state
