"""FLTrust: Cao, Fang, Liu & Gong 2021, "FLTrust: Byzantine-robust Federated Learning via
Trust Bootstrapping" (NDSS).

The server holds a small clean root dataset and computes its own reference gradient g0 each
round. Each worker gets trust ReLU(cos(x_i, g0)), is rescaled to ||g0|| (so magnitude attacks
do nothing), and the output is the trust-weighted average. Non-finite vectors get zero trust.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from verde.robust._core import Array, Stack, check_f, row_sq_norms, to_numpy
from verde.robust.base import rule_class, run_rule


def _fltrust_kernel(stack: Stack, reference: Array) -> Array:
    x = stack.native()
    if stack.is_torch:
        g0 = torch.as_tensor(reference).to(device=x.device, dtype=x.dtype).reshape(-1)
    else:
        g0 = np.asarray(to_numpy(reference), dtype=x.dtype).reshape(-1)
    if g0.shape[0] != stack.d:
        raise ValueError(f"fltrust: reference has {g0.shape[0]} coordinates, the worker vectors "
                         f"have {stack.d}")
    g0n = float(np.sum(to_numpy(g0).astype(np.float64) ** 2))
    if not np.isfinite(g0n):
        raise ValueError("fltrust: the reference gradient has non-finite entries")
    ok = stack.finite_rows()
    norms = np.sqrt(row_sq_norms(stack))
    dots = np.zeros(stack.n)
    gi = np.flatnonzero(ok)
    if gi.size:
        dots[gi] = to_numpy(x[stack.index(gi)] @ g0).astype(np.float64)
    ref_norm = float(np.sqrt(g0n))
    denom = np.maximum(norms * ref_norm, 1e-300)
    trust = np.where(ok, np.maximum(dots / denom, 0.0), 0.0)
    if trust.sum() <= 0:
        return stack.zeros()
    w = trust * ref_norm / np.maximum(norms, 1e-300) / trust.sum()
    w[~ok] = 0.0
    return stack.combine(w)


def fltrust(inputs: Any, reference: Any, f: int = 0, *, deterministic: bool = False) -> Array:
    """FLTrust (Cao, Fang, Liu & Gong 2021, NDSS): trust score ReLU(cos(x_i, g0)) against the
    server's reference gradient ``g0``; each x_i rescaled to ||g0||; trust-weighted average.
    All-zero trust gives the zero vector, as in the paper.
    """
    check_f(f)
    if reference is None:
        raise ValueError("fltrust: needs the server's reference gradient (reference=...)")
    return run_rule(_fltrust_kernel, inputs, deterministic=deterministic, reference=reference)


FLTrust = rule_class("fltrust", fltrust, "FLTrust; call as ``FLTrust()(inputs, reference=g0)``",
                     class_name="FLTrust", call_kwargs=("reference",), needs_reference=True)
