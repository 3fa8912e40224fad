"""Random tensor operations on a :class:`PhiloxStream` (spec elementwise.md, "random numbers").

Plain functions the dispatch mode routes aten random ops to; each takes the stream first and
then the aten overload's arguments. Elements are filled in *logical* row-major order of the
output (C3): element ``i`` uses the words of index ``i * k .. i * k + k - 1`` of the draw
(``k`` words per element: 1 for binary32/16 uniform and bernoulli, 2 for binary64 uniform,
randint and randperm keys; normal uses 2 words per *pair* of elements). A draw of ``W`` words
advances the stream by ``ceil(W / 4)`` blocks, so the values never depend on threads or
chunking, and two draws never share a block.

Scaling to a range is done in binary64 and rounded once to the output dtype:
``uniform_: from + (to - from) * u`` (may round up to ``to`` in a narrow dtype, as in torch),
``normal_: mean + std * z``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from repops.errors import UnsupportedInputError
from repops.rng import transforms as tr
from repops.rng.stream import PhiloxStream

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_float(op: str, dtype: torch.dtype) -> None:
    if dtype not in _FLOATS:
        raise UnsupportedInputError(f"{op}: needs a floating dtype, got {dtype}")


def _fill(self: torch.Tensor, values: np.ndarray) -> torch.Tensor:
    """Write flat logical-order ``values`` into ``self`` (any layout), one rounding to dtype."""
    if self.device.type != "cpu":
        raise UnsupportedInputError(f"repops.rng fills CPU tensors, got {self.device}")
    src = torch.from_numpy(values).reshape(self.shape)
    with torch.no_grad():
        self.copy_(src)
    return self


def uniform_values(stream: PhiloxStream, n: int, dtype: torch.dtype) -> np.ndarray:
    """``n`` uniforms in [0, 1): float32 (exact 24-bit) or, for float64, 53-bit float64."""
    if dtype == torch.float64:
        out64 = np.empty(n, dtype=np.float64)
        w = stream.words(2 * n)
        if n:
            tr.map_uniform_f64(w, out64)
        return out64
    out = np.empty(n, dtype=np.float32)
    w = stream.words(n)
    if n:
        tr.map_uniform_f32(w, out)
    return out


def normal_values(stream: PhiloxStream, n: int) -> np.ndarray:
    """``n`` standard normals (binary64), Box-Muller pairs from ``2 * ceil(n/2)`` words."""
    w = stream.words(2 * ((n + 1) // 2))
    out = np.empty(n, dtype=np.float64)
    if n:
        tr.map_box_muller(w, out)
    return out


def uniform_(
    stream: PhiloxStream, self: torch.Tensor, from_: float = 0.0, to: float = 1.0
) -> torch.Tensor:
    """aten.uniform_: fill ``self`` with ``from + (to - from) * u`` (binary64, one rounding)."""
    _check_float("uniform_", self.dtype)
    if not from_ <= to:
        raise ValueError(f"uniform_: expects from <= to, got from={from_}, to={to}")
    u = uniform_values(stream, self.numel(), self.dtype).astype(np.float64)
    return _fill(self, float(from_) + (float(to) - float(from_)) * u)


def normal_(
    stream: PhiloxStream, self: torch.Tensor, mean: float = 0.0, std: float = 1.0
) -> torch.Tensor:
    """aten.normal_: fill ``self`` with ``mean + std * z`` (binary64, one rounding)."""
    _check_float("normal_", self.dtype)
    if not std >= 0:
        raise ValueError(f"normal_: expects std >= 0, got {std}")
    z = normal_values(stream, self.numel())
    return _fill(self, float(mean) + float(std) * z)


def rand(
    stream: PhiloxStream, size: Sequence[int], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    return uniform_(stream, torch.empty(tuple(size), dtype=dtype))


def randn(
    stream: PhiloxStream, size: Sequence[int], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    return normal_(stream, torch.empty(tuple(size), dtype=dtype))


def bernoulli_mask(stream: PhiloxStream, p: np.ndarray) -> np.ndarray:
    """Boolean mask, element i true iff ``(w_i >> 8) * 2^-24 < p_i`` (exact comparison)."""
    w = stream.words(p.size)
    u = (w >> np.uint32(8)).astype(np.float64) * 2.0**-24
    return u < p.reshape(-1)


def _probabilities(op: str, p: Any, shape: torch.Size) -> np.ndarray:
    if isinstance(p, torch.Tensor):
        arr = torch.broadcast_to(p.detach().to(torch.float64), shape).contiguous().numpy()
    else:
        arr = np.full(tuple(shape), float(p), dtype=np.float64)
    if arr.size and not (np.all(arr >= 0) and np.all(arr <= 1)):
        raise ValueError(f"{op}: probabilities must be in [0, 1]")
    return arr


def bernoulli_(stream: PhiloxStream, self: torch.Tensor, p: Any = 0.5) -> torch.Tensor:
    """aten.bernoulli_.float / .Tensor: fill ``self`` with 0/1 (1 with probability p)."""
    m = bernoulli_mask(stream, _probabilities("bernoulli_", p, self.shape))
    return _fill(self, m.astype(np.float64) if self.is_floating_point() else m.astype(np.int64))


def bernoulli(stream: PhiloxStream, self: torch.Tensor) -> torch.Tensor:
    """aten.bernoulli.default: a new tensor of 0/1 with probabilities ``self``."""
    out = torch.empty_like(self, memory_format=torch.contiguous_format)
    return bernoulli_(stream, out, self)


def native_dropout(
    stream: PhiloxStream, input: torch.Tensor, p: float, train: bool | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """aten.native_dropout: ``(out, mask)``; keep with probability ``1 - p`` (binary64),
    ``scale = 1 / (1 - p)`` rounded to the compute dtype (0 when p == 1),
    ``out = (x * mask) * scale`` in the compute dtype, rounded once to the input dtype.
    With ``train`` false: ``(input.clone(), ones)`` and no draw."""
    _check_float("native_dropout", input.dtype)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"native_dropout: p must be in [0, 1], got {p}")
    if train is not None and not train:
        return input.clone(), torch.ones_like(input, dtype=torch.bool)
    keep = 1.0 - float(p)
    mask = bernoulli_mask(stream, np.full(input.numel(), keep))
    ct = np.float64 if input.dtype == torch.float64 else np.float32
    scale = ct(0.0 if keep == 0 else 1.0 / keep)
    x = input.detach().to(torch.float64 if ct is np.float64 else torch.float32)
    flat = x.contiguous().numpy().reshape(-1)
    out = (flat * mask.astype(ct)) * scale
    out_t = torch.from_numpy(out).reshape(input.shape).to(input.dtype)
    return out_t, torch.from_numpy(mask).reshape(input.shape)


def randint(
    stream: PhiloxStream, low: int, high: int, size: Sequence[int], dtype: torch.dtype = torch.int64
) -> torch.Tensor:
    """aten.randint.low: ``low + floor(r * (high - low) / 2^64)`` with 64-bit Philox ``r``."""
    if not low < high:
        raise ValueError(f"randint: expects low < high, got low={low}, high={high}")
    span = high - low
    if span > 1 << 63 or low < -(1 << 63) or high > 1 << 63:
        raise ValueError(f"randint: range [{low}, {high}) does not fit in int64")
    n = int(np.prod(size)) if len(size) else 1
    w = stream.words(2 * n)
    out = np.empty(n, dtype=np.int64)
    if n:
        tr.map_randint(w, np.int64(low), np.uint64(span), out)
    return torch.from_numpy(out).reshape(tuple(size)).to(dtype)


def randperm(stream: PhiloxStream, n: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """aten.randperm: indices sorted by 64-bit Philox keys, ties broken by index (stable sort)."""
    if n < 0:
        raise ValueError(f"randperm: n must be >= 0, got {n}")
    keys = tr.keys64(stream.words(2 * n))
    return torch.from_numpy(np.argsort(keys, kind="stable").astype(np.int64)).to(dtype)
