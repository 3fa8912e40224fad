"""aten.convolution / aten.convolution_backward (2-D, and 1-D as height 1), spec/linalg.md §3.

Why im2col: spec §3 defines every output element as one C5 chain over a fixed tap order
((ci, kh, kw) forward, (o, kh, kw) for grad_input, (n, oh, ow) for grad_weight), with padded
taps taking part as +0.0. Gathering those taps into the rows of a matrix (an exact copy) and
running the blocked C5 product of :mod:`repops.kernels.matmul_core` on it gives exactly that
chain per element, at matrix-product speed, independent of thread count and layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
import torch

from repops._numba import pjit
from repops._tensor import from_compute, to_compute
from repops.errors import RepopsInputError, UnsupportedInputError
from repops.kernels._lanes import lane_sum
from repops.kernels.matmul_core import gemm

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class ConvShapeError(RepopsInputError):
    """A convolution argument has the wrong rank, sizes, groups or hyper-parameters."""


@pjit
def _im2col(x, groups, kh_, kw_, sh, sw, ph, pw, dh, dw, oh_, ow_, tap_major):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """Taps of xpad (spec §3) as a matrix per group, rows (n, oh, ow) and taps (ci, kh, kw).

    ``cols[g, (n, oh, ow), (ci, kh, kw)] = xpad[n, g*Cg + ci, oh*sh - ph + kh*dh, ...]``, or
    its transpose ``cols[g, (ci, kh, kw), (n, oh, ow)]`` when ``tap_major`` (an exact copy
    either way; the product's chain runs over the taps in the same order).
    """
    nb, cin, h, w = x.shape
    cg = cin // groups
    nrow = nb * oh_ * ow_
    ntap = cg * kh_ * kw_
    if tap_major:
        cols = np.zeros((groups, ntap, nrow), dtype=x.dtype)
        # One tap per work item: each writes one contiguous row of cols.
        for item in numba.prange(groups * ntap):
            g = item // ntap
            tap = item - g * ntap
            ci = tap // (kh_ * kw_)
            kh = (tap // kw_) % kh_
            kw = tap % kw_
            for n in range(nb):
                for oh in range(oh_):
                    y = oh * sh - ph + kh * dh
                    if y < 0 or y >= h:
                        continue
                    row0 = (n * oh_ + oh) * ow_
                    for ow in range(ow_):
                        xx = ow * sw - pw + kw * dw
                        if 0 <= xx < w:
                            cols[g, tap, row0 + ow] = x[n, g * cg + ci, y, xx]
        return cols
    cols = np.zeros((groups, nrow, ntap), dtype=x.dtype)
    for item in numba.prange(groups * nb * oh_):
        g = item // (nb * oh_)
        rest = item - g * nb * oh_
        n = rest // oh_
        oh = rest - n * oh_
        for ow in range(ow_):
            row = (n * oh_ + oh) * ow_ + ow
            for ci in range(cg):
                for kh in range(kh_):
                    y = oh * sh - ph + kh * dh
                    if y < 0 or y >= h:
                        continue
                    for kw in range(kw_):
                        xx = ow * sw - pw + kw * dw
                        if 0 <= xx < w:
                            cols[g, row, (ci * kh_ + kh) * kw_ + kw] = x[n, g * cg + ci, y, xx]
    return cols


@pjit
def _im2col_grad(dy, groups, kh_, kw_, sh, sw, ph, pw, dh, dw, h, w):  # type: ignore[no-untyped-def] # noqa: PLR0917
    """cols[g, (o, kh, kw), (n, y, x)] = dyz[n, g*Og + o, y + ph - kh*dh, x + pw - kw*dw]."""
    nb, cout, oh_, ow_ = dy.shape
    og = cout // groups
    ntap = og * kh_ * kw_
    cols = np.zeros((groups, ntap, nb * h * w), dtype=dy.dtype)
    for item in numba.prange(groups * ntap):
        g = item // ntap
        tap = item - g * ntap
        o = tap // (kh_ * kw_)
        kh = (tap // kw_) % kh_
        kw = tap % kw_
        for n in range(nb):
            for y in range(h):
                u = y + ph - kh * dh
                if u < 0 or u % sh != 0 or u // sh >= oh_:
                    continue
                row0 = (n * h + y) * w
                for xx in range(w):
                    v = xx + pw - kw * dw
                    if v >= 0 and v % sw == 0 and v // sw < ow_:
                        cols[g, tap, row0 + xx] = dy[n, g * og + o, u // sh, v // sw]
    return cols


@pjit
def _row_lsums(a):  # type: ignore[no-untyped-def]
    """LSUM (C4) of every row of a C-contiguous 2-D array."""
    out = np.empty(a.shape[0], dtype=a.dtype)
    for r in numba.prange(a.shape[0]):
        out[r] = lane_sum(a[r])
    return out


def _check_tensor(name: str, t: Any) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _FLOATS:
        raise UnsupportedInputError(
            f"{name} has dtype {t.dtype}; repops convolution takes float16, bfloat16, float32 "
            "or float64"
        )
    return t


def _pair(name: str, v: Sequence[int], one_d: bool, fill: int) -> tuple[int, int]:
    vals = [int(x) for x in v]
    if one_d and len(vals) == 1:
        return fill, vals[0]
    if not one_d and len(vals) == 2:
        return vals[0], vals[1]
    if not one_d and len(vals) == 1:
        return vals[0], vals[0]
    raise ConvShapeError(f"{name} must have {1 if one_d else 2} entries, got {list(v)}")


class _Geometry:
    """Validated sizes of one convolution call (4-D view; 1-D inputs get height 1)."""

    def __init__(  # noqa: PLR0917 - mirrors the aten arguments
        self,
        inp: torch.Tensor,
        weight: torch.Tensor,
        stride: Sequence[int],
        padding: Sequence[int],
        dilation: Sequence[int],
        transposed: bool,
        output_padding: Sequence[int],
        groups: int,
    ) -> None:
        if transposed:
            raise UnsupportedInputError(
                "repops convolution has no transposed (ConvTranspose) kernel yet"
            )
        if inp.dim() not in (3, 4):
            raise UnsupportedInputError(
                f"repops convolution is 1-D or 2-D: input must be 3-D or 4-D, got shape "
                f"{tuple(inp.shape)}"
            )
        if weight.dim() != inp.dim():
            raise ConvShapeError(
                f"weight must have {inp.dim()} dims like input, got shape {tuple(weight.shape)}"
            )
        if any(int(p) != 0 for p in output_padding):
            raise ConvShapeError(
                f"output_padding must be 0 when not transposed, got {list(output_padding)}"
            )
        self.one_d = inp.dim() == 3
        self.sh, self.sw = _pair("stride", stride, self.one_d, 1)
        self.ph, self.pw = _pair("padding", padding, self.one_d, 0)
        self.dh, self.dw = _pair("dilation", dilation, self.one_d, 1)
        if min(self.sh, self.sw, self.dh, self.dw) < 1 or min(self.ph, self.pw) < 0:
            raise ConvShapeError("stride and dilation must be >= 1 and padding >= 0")
        self.groups = int(groups)
        x4 = inp.unsqueeze(2) if self.one_d else inp
        w4 = weight.unsqueeze(2) if self.one_d else weight
        self.n, self.cin, self.h, self.w = (int(s) for s in x4.shape)
        self.cout, self.cg, self.kh, self.kw = (int(s) for s in w4.shape)
        g = self.groups
        if g < 1 or self.cin % g or self.cout % g or self.cin // g != self.cg:
            raise ConvShapeError(
                f"groups={groups}: input has {self.cin} channels and weight is "
                f"{tuple(weight.shape)}; need C_in = groups * weight.shape[1] and C_out "
                "divisible by groups"
            )
        self.og = self.cout // g
        self.oh = (self.h + 2 * self.ph - self.dh * (self.kh - 1) - 1) // self.sh + 1
        self.ow = (self.w + 2 * self.pw - self.dw * (self.kw - 1) - 1) // self.sw + 1
        if self.oh < 1 or self.ow < 1:
            raise ConvShapeError(
                f"input {tuple(inp.shape)} is smaller than the dilated kernel "
                f"{tuple(weight.shape)} with padding {list(padding)}"
            )

    def x4(self, t: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(2) if self.one_d else t

    def back(self, t: torch.Tensor) -> torch.Tensor:
        return t.squeeze(2) if self.one_d else t

    def cols(self, x: np.ndarray, tap_major: bool) -> np.ndarray:
        return _im2col(x, self.groups, self.kh, self.kw, self.sh, self.sw, self.ph, self.pw,
                       self.dh, self.dw, self.oh, self.ow, tap_major)


def _same_dtype(named: list[tuple[str, torch.Tensor]]) -> torch.dtype:
    if len({t.dtype for _, t in named}) != 1:
        listing = ", ".join(f"{n}={t.dtype}" for n, t in named)
        raise ConvShapeError(f"convolution tensors must share one dtype, got {listing}")
    return named[0][1].dtype


def convolution(  # noqa: PLR0917 - the aten signature
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    transposed: bool,
    output_padding: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """aten.convolution.default, spec/linalg.md §3 forward."""
    _check_tensor("input", input)
    _check_tensor("weight", weight)
    named = [("input", input), ("weight", weight)]
    if bias is not None:
        _check_tensor("bias", bias)
        named.append(("bias", bias))
    dtype = _same_dtype(named)
    geo = _Geometry(input, weight, stride, padding, dilation, transposed, output_padding, groups)
    if bias is not None and tuple(bias.shape) != (geo.cout,):
        raise ConvShapeError(f"bias must have shape ({geo.cout},), got {tuple(bias.shape)}")
    g, og = geo.groups, geo.og
    cols = geo.cols(to_compute(geo.x4(input)), True)  # (g, taps, N*OH*OW)
    wmat = to_compute(geo.x4(weight)).reshape(g, og, geo.cg * geo.kh * geo.kw)
    prod = gemm(wmat, cols)  # (g, Og, N*OH*OW): out^T, each element a chain over the taps
    out = prod.reshape(g, og, geo.n, geo.oh, geo.ow).transpose(2, 0, 1, 3, 4)
    out = np.ascontiguousarray(out).reshape(geo.n, geo.cout, geo.oh, geo.ow)
    if bias is not None:
        out = (out + to_compute(bias)[None, :, None, None]).astype(out.dtype, copy=False)
    return geo.back(from_compute(out, dtype))


def convolution_backward(  # noqa: PLR0917 - the aten signature
    grad_output: torch.Tensor,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias_sizes: Sequence[int] | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    transposed: bool,
    output_padding: Sequence[int],
    groups: int,
    output_mask: Sequence[bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """aten.convolution_backward.default, spec/linalg.md §3 backward."""
    _check_tensor("grad_output", grad_output)
    _check_tensor("input", input)
    _check_tensor("weight", weight)
    _same_dtype([("grad_output", grad_output), ("input", input), ("weight", weight)])
    geo = _Geometry(input, weight, stride, padding, dilation, transposed, output_padding, groups)
    dy4 = geo.x4(grad_output)
    expected = (geo.n, geo.cout, geo.oh, geo.ow)
    if tuple(dy4.shape) != expected:
        raise ConvShapeError(
            f"grad_output must have shape {geo.back(torch.empty(expected)).shape}, got "
            f"{tuple(grad_output.shape)}"
        )
    if len(output_mask) != 3:
        raise ConvShapeError(f"output_mask must have 3 entries, got {list(output_mask)}")
    g, og, cg = geo.groups, geo.og, geo.cg
    dy = to_compute(dy4)
    grad_input = grad_weight = grad_bias = None
    if output_mask[0]:
        cols = _im2col_grad(dy, g, geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw, geo.dh,
                            geo.dw, geo.h, geo.w)
        w4 = geo.x4(weight).reshape(g, og, cg, geo.kh, geo.kw)
        wmat = to_compute(w4.permute(0, 2, 1, 3, 4).reshape(g, cg, og * geo.kh * geo.kw))
        prod = gemm(wmat, cols)  # (g, Cg, N*H*W): grad_input^T, chains over (o, kh, kw)
        gi = prod.reshape(g, cg, geo.n, geo.h, geo.w).transpose(2, 0, 1, 3, 4)
        gi = np.ascontiguousarray(gi).reshape(geo.n, geo.cin, geo.h, geo.w)
        grad_input = geo.back(from_compute(gi, input.dtype))
    if output_mask[1]:
        cols = geo.cols(to_compute(geo.x4(input)), False)  # (g, N*OH*OW, taps)
        dmat = np.ascontiguousarray(
            dy.reshape(geo.n, g, og, geo.oh * geo.ow).transpose(1, 2, 0, 3)
        ).reshape(g, og, geo.n * geo.oh * geo.ow)
        gw = gemm(dmat, cols).reshape(geo.cout, cg, geo.kh, geo.kw)
        grad_weight = geo.back(from_compute(gw, weight.dtype))
    if output_mask[2]:
        rows = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(geo.cout, -1)
        grad_bias = from_compute(_row_lsums(rows), grad_output.dtype)
    return grad_input, grad_weight, grad_bias


ATEN_KERNELS: dict[str, Callable[..., Any]] = {
    "aten.convolution.default": convolution,
    "aten.convolution_backward.default": convolution_backward,
}
