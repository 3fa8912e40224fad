"""Negative log-likelihood and mean-squared-error losses, forward and backward (spec §8).

Why these are reductions: the loss of a batch is a sum over positions, and its order decides
the bits. Positions ``p`` run over the target in logical row-major order (batch first, then
spatial dims); ignored positions stay in the sum as ``+0.0`` so that a position's lane
(``p mod 16``, C4) never depends on which other targets are ignored. Cross-entropy reaches aten
as ``_log_softmax`` + ``nll_loss_forward`` (``nll_loss2d_forward`` for inputs with spatial
dims); label smoothing decomposes into sums and elementwise ops handled elsewhere.

Picking ``x[p, target[p]]`` out of the input and scattering gradients back are exact copies
(torch ``gather``/``scatter``); every arithmetic step runs in the kernels below.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import torch

from repops._numba import jit
from repops.errors import UnsupportedInputError
from repops.kernels._buffers import reusable_empty_like
from repops.kernels._lanes import lane_dot, lane_sum
from repops.kernels._rows import float_compute, row_kernel

REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}
_TORCH = {np.float32: torch.float32, np.float64: torch.float64}

# ----------------------------------------------------------------------------- kernels


@jit
def _nll_terms(
    picked: np.ndarray, w: np.ndarray, loss: np.ndarray
) -> None:  # pragma: no cover - compiled
    for p in range(picked.shape[0]):
        loss[p] = -(w[p] * picked[p])


@jit
def _nll_grad_values(
    g: np.ndarray, w: np.ndarray, per_position: bool, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    for p in range(w.shape[0]):
        c = g[p] if per_position else g[0]
        out[p] = -(w[p] * c)


@row_kernel
def _sq_diff(x: np.ndarray, t: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    for p in numba.prange(x.shape[0]):
        d = x[p] - t[p]
        out[p] = d * d


@row_kernel
def _mse_grad(
    x: np.ndarray, t: np.ndarray, c: np.ndarray, per_position: bool, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    for p in numba.prange(x.shape[0]):
        cp = c[p] if per_position else c[0]
        out[p] = (x[p] - t[p]) * cp


# ----------------------------------------------------------------------------- nll helpers


def _reduction(reduction: int, op: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"{op}: reduction must be 0 (none), 1 (mean) or 2 (sum), got {reduction!r}"
        )
    return REDUCTIONS[reduction]


def _positions(
    self: torch.Tensor, target: torch.Tensor, spatial: bool, op: str
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(logits as (P, C) view-or-copy, target as (P,), C) with positions in row-major order."""
    float_compute(self, f"{op}: self")
    if not isinstance(target, torch.Tensor) or target.dtype not in (
        torch.int64,
        torch.int32,
        torch.uint8,
        torch.int16,
        torch.int8,
    ):
        raise ValueError(
            f"{op}: target must be an integer tensor, got {getattr(target, 'dtype', target)}"
        )
    if spatial:
        if self.dim() != 4 or target.dim() != 3:
            raise ValueError(
                f"{op}: expected 4-d input and 3-d target, got {self.dim()}-d and {target.dim()}-d"
            )
        n, c = self.shape[0], self.shape[1]
        if target.shape != (n, *self.shape[2:]):
            raise ValueError(
                f"{op}: target shape {list(target.shape)} does not match input {list(self.shape)}"
            )
        logits = self.detach().permute(0, 2, 3, 1).reshape(-1, c)
        return logits, target.reshape(-1).to(torch.int64), c
    if self.dim() not in (1, 2):
        raise ValueError(f"{op}: input must be 1-d or 2-d, got {self.dim()}-d")
    c = self.shape[-1]
    logits = self.detach().reshape(-1, c)
    expected = () if self.dim() == 1 else (self.shape[0],)
    if tuple(target.shape) != expected:
        raise ValueError(
            f"{op}: target shape {list(target.shape)} does not match input "
            f"{list(self.shape)} (expected {list(expected)})"
        )
    return logits, target.reshape(-1).to(torch.int64), c


def _weights(  # noqa: PLR0917 - fixed positional signature
    weight: torch.Tensor | None,
    tgt: torch.Tensor,
    c: int,
    ignore_index: int,
    ct: torch.dtype,
    op: str,
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Per-position weights w_p (0 for ignored), the valid mask and targets safe to gather."""
    valid = tgt != ignore_index
    bad = valid & ((tgt < 0) | (tgt >= c))
    if bool(bad.any()):
        first = int(tgt[bad][0])
        raise ValueError(
            f"{op}: target {first} is out of range for {c} classes (ignore_index={ignore_index})"
        )
    safe = torch.where(valid, tgt, torch.zeros_like(tgt))
    if weight is None:
        w = valid.to(ct)
    else:
        float_compute(weight, f"{op}: weight")
        if weight.dim() != 1 or weight.shape[0] != c:
            raise ValueError(f"{op}: weight must have shape [{c}], got {list(weight.shape)}")
        w = torch.where(valid, weight.detach().to(ct)[safe], torch.zeros((), dtype=ct))
    return w.contiguous().numpy(), valid, safe


def _lsum(a: np.ndarray) -> np.floating:
    """LSUM as a scalar of the array's own type (numba hands back a Python float: exact)."""
    return a.dtype.type(lane_sum(np.ascontiguousarray(a)))


def _nll_forward(  # noqa: PLR0917 - fixed positional signature
    self: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    reduction: int,
    ignore_index: int,
    spatial: bool,
    op: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    red = _reduction(reduction, op)
    ct = float_compute(self, f"{op}: self")
    logits, tgt, c = _positions(self, target, spatial, op)
    w, valid, safe = _weights(weight, tgt, c, ignore_index, ct, op)
    picked = logits.gather(1, safe.unsqueeze(1)).reshape(-1).to(ct).contiguous().numpy()
    loss = np.zeros(picked.shape[0], dtype=picked.dtype)
    _nll_terms(picked, w, loss)
    loss[~valid.numpy()] = 0.0  # ignored positions contribute +0.0 exactly
    tw_dtype = self.dtype
    if red == "none":
        return (
            torch.from_numpy(loss).reshape(target.shape).to(self.dtype),
            torch.zeros((), dtype=tw_dtype),
        )
    total = _lsum(loss)
    tw = _lsum(w)
    with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: 0/0 = NaN, as torch
        out = total / tw if red == "mean" else total
    return (
        torch.from_numpy(np.array(out, dtype=loss.dtype)).to(self.dtype),
        torch.from_numpy(np.array(tw, dtype=loss.dtype)).to(tw_dtype),
    )


def _nll_backward(  # noqa: PLR0917 - fixed positional signature
    grad_output: torch.Tensor,
    self: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    reduction: int,
    ignore_index: int,
    total_weight: torch.Tensor,
    spatial: bool,
    op: str,
) -> torch.Tensor:
    red = _reduction(reduction, op)
    ct = float_compute(self, f"{op}: self")
    float_compute(grad_output, f"{op}: grad_output")
    logits, tgt, c = _positions(self, target, spatial, op)
    w, valid, safe = _weights(weight, tgt, c, ignore_index, ct, op)
    g = grad_output.detach().to(ct).reshape(-1).contiguous().numpy()
    if red == "none":
        if g.shape[0] != w.shape[0]:
            raise ValueError(f"{op}: grad_output has {g.shape[0]} elements, expected {w.shape[0]}")
        per_position = True
    else:
        if g.shape[0] != 1:
            raise ValueError(f"{op}: grad_output must be a scalar for reduction={red}")
        if red == "mean":
            float_compute(total_weight, f"{op}: total_weight")
            tw = total_weight.detach().to(ct).reshape(-1).numpy()
            g = np.array([g[0] / tw[0]], dtype=g.dtype)
        per_position = False
    vals = np.empty(w.shape[0], dtype=w.dtype)
    _nll_grad_values(g, w, per_position, vals)
    vals[~valid.numpy()] = 0.0
    gi = torch.zeros(logits.shape, dtype=ct)
    gi.scatter_(1, safe.unsqueeze(1), torch.from_numpy(vals).unsqueeze(1))
    gi = gi.to(self.dtype)
    if spatial:
        n, _, h, wd = self.shape
        return gi.reshape(n, h, wd, c).permute(0, 3, 1, 2).contiguous()
    return gi.reshape(self.shape)


# ----------------------------------------------------------------------------- public ops


def nll_loss_forward(
    self: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    reduction: int,
    ignore_index: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """aten.nll_loss_forward.default -> (output, total_weight).

    ``l_p = -(w_p * x[p, t_p])`` (``+0.0`` where ignored); sum: ``LSUM(l)``; mean:
    ``LSUM(l) / LSUM(w)``; total_weight = ``LSUM(w)`` (0 for reduction none).
    """
    return _nll_forward(self, target, weight, reduction, ignore_index, False, "nll_loss_forward")


def nll_loss_backward(  # noqa: PLR0917 - aten signature
    grad_output: torch.Tensor,
    self: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    reduction: int,
    ignore_index: int,
    total_weight: torch.Tensor,
) -> torch.Tensor:
    """aten.nll_loss_backward.default: ``gi[p, t_p] = -(w_p * c_p)``, zero elsewhere.

    ``c_p = g_p`` (none), ``g`` (sum), ``g / total_weight`` (mean, one division).
    """
    return _nll_backward(
        grad_output,
        self,
        target,
        weight,
        reduction,
        ignore_index,
        total_weight,
        False,
        "nll_loss_backward",
    )


def nll_loss2d_forward(
    self: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    reduction: int,
    ignore_index: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """aten.nll_loss2d_forward.default: as nll_loss_forward over (N, C, H, W) / (N, H, W)."""
    return _nll_forward(self, target, weight, reduction, ignore_index, True, "nll_loss2d_forward")


def nll_loss2d_backward(  # noqa: PLR0917 - aten signature
    grad_output: torch.Tensor,
    self: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    reduction: int,
    ignore_index: int,
    total_weight: torch.Tensor,
) -> torch.Tensor:
    """aten.nll_loss2d_backward.default."""
    return _nll_backward(
        grad_output,
        self,
        target,
        weight,
        reduction,
        ignore_index,
        total_weight,
        True,
        "nll_loss2d_backward",
    )


def _mse_inputs(
    self: torch.Tensor, target: torch.Tensor, op: str
) -> tuple[np.ndarray, np.ndarray, torch.Size]:
    ct = float_compute(self, f"{op}: self")
    float_compute(target, f"{op}: target")
    try:
        xs, ts = torch.broadcast_tensors(self.detach(), target.detach())
    except RuntimeError as exc:
        raise ValueError(
            f"{op}: self {list(self.shape)} and target {list(target.shape)} do not broadcast"
        ) from exc
    x = xs.to(ct).contiguous().reshape(-1).numpy()
    t = ts.to(ct).contiguous().reshape(-1).numpy()
    return x, t, xs.shape


def mse_loss(self: torch.Tensor, target: torch.Tensor, reduction: int = 1) -> torch.Tensor:
    """aten.mse_loss.default: ``d = x - t``; none ``d*d``; sum ``LDOT(d, d)``; mean ``/ n``."""
    red = _reduction(reduction, "mse_loss")
    x, t, shape = _mse_inputs(self, target, "mse_loss")
    if red == "none":
        out = reusable_empty_like(x)
        _sq_diff(x, t, out)
        return torch.from_numpy(out).reshape(shape).to(self.dtype)
    d = x - t  # elementwise IEEE subtraction in the compute type (exact per element)
    s = x.dtype.type(lane_dot(d, d))
    if red == "mean":
        s = s / x.dtype.type(x.shape[0])
    return torch.from_numpy(np.array(s, dtype=x.dtype)).to(self.dtype)


def mse_loss_backward(
    grad_output: torch.Tensor, self: torch.Tensor, target: torch.Tensor, reduction: int
) -> torch.Tensor:
    """aten.mse_loss_backward.default: ``gi = (x - t) * c``, ``c = 2g`` (mean: ``2g / n``)."""
    red = _reduction(reduction, "mse_loss_backward")
    float_compute(grad_output, "mse_loss_backward: grad_output")
    x, t, shape = _mse_inputs(self, target, "mse_loss_backward")
    if list(shape) != list(self.shape):
        raise UnsupportedInputError(
            f"mse_loss_backward: target {list(target.shape)} broadcasts self {list(self.shape)} "
            "to a larger shape; reduce the gradient outside this kernel"
        )
    ftype = x.dtype.type
    if red == "none":
        g = grad_output.detach().to(_TORCH[x.dtype.type]).broadcast_to(shape)
        c = g.contiguous().reshape(-1).numpy() * ftype(2.0)
        per_position = True
    else:
        if grad_output.numel() != 1:
            raise ValueError(f"mse_loss_backward: grad_output must be a scalar for reduction={red}")
        c0 = ftype(grad_output.detach().reshape(()).to(_TORCH[x.dtype.type]).item())
        c0 = c0 * ftype(2.0)
        if red == "mean":
            c0 = c0 / ftype(x.shape[0])
        c = np.array([c0], dtype=x.dtype)
        per_position = False
    out = reusable_empty_like(x)
    _mse_grad(x, t, c, per_position, out)
    return torch.from_numpy(out).reshape(shape).to(self.dtype)


ATEN_KERNELS: dict[str, Callable[..., object]] = {
    "aten.nll_loss_forward.default": nll_loss_forward,
    "aten.nll_loss_backward.default": nll_loss_backward,
    "aten.nll_loss2d_forward.default": nll_loss2d_forward,
    "aten.nll_loss2d_backward.default": nll_loss2d_backward,
    "aten.mse_loss.default": mse_loss,
    "aten.mse_loss_backward.default": mse_loss_backward,
}
