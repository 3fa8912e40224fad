"""Coordinate-wise rules: mean, median, trimmed mean, MeaMed.

Each coordinate is aggregated on its own, so these rules run chunk by chunk over coordinates
(``COORDINATE_CHUNK`` at a time): memory stays bounded and there is no size cap (torch's
``median``/``quantile`` are capped at 2^24 elements; sorting along the worker axis is not).
Values are sorted or partitioned in the input dtype (exact), and only the averaging of the
selected values runs in float64 before casting back.

NaN sorts above +inf in both numpy and torch, so up to f NaN entries per coordinate are
trimmed away like large values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from verde.robust._core import COORDINATE_CHUNK, Array, Stack, check_f, require
from verde.robust.base import Aggregator, register_aggregator, run_rule
from verde.robust.errors import RobustInputError

SortedFn = Callable[[Array, int], Array]


def _take0(a: Array, idx: Array) -> Array:
    """``a[idx[j], j]`` for every column j (idx has shape (k, cols))."""
    if isinstance(a, torch.Tensor):
        return torch.gather(a, 0, idx)
    return np.take_along_axis(a, idx, axis=0)


def coordinatewise(stack: Stack, fn: SortedFn, kth: tuple[int, ...] | None = None) -> Array:
    """Apply ``fn(sorted_chunk_float64, n) -> (cols,)`` to worker-axis-sorted coordinate chunks.

    With ``kth`` given, numpy partitions instead of sorting (only those ranks are placed; the
    values between them are unordered but on the right side), which is cheaper than a sort.
    The result has the input dtype.
    """
    x = stack.data
    n, d = stack.n, stack.d
    if stack.is_torch:
        out = torch.empty(d, dtype=x.dtype, device=x.device)
        for a in range(0, d, COORDINATE_CHUNK):
            b = min(a + COORDINATE_CHUNK, d)
            s = torch.sort(x[:, a:b], dim=0, stable=True).values.to(torch.float64)
            out[a:b] = fn(s, n).to(x.dtype)
        return out
    out = np.empty(d, dtype=x.dtype)
    for a in range(0, d, COORDINATE_CHUNK):
        b = min(a + COORDINATE_CHUNK, d)
        c = np.ascontiguousarray(x[:, a:b].T)  # (cols, n): contiguous lanes sort fastest
        if kth is None:
            c.sort(axis=1)
        else:
            c.partition(kth, axis=1)
        out[a:b] = fn(c.T.astype(np.float64), n)
    return out


def _median_sorted(s: Array, n: int) -> Array:
    return (s[(n - 1) // 2] + s[n // 2]) * 0.5


def _mean_kernel(stack: Stack) -> Array:
    x = stack.data
    if stack.is_torch:
        return x.sum(dim=0, dtype=torch.float64) / stack.n
    return x.sum(axis=0, dtype=np.float64) / stack.n


def mean(inputs: Any, f: int = 0, *, deterministic: bool = False) -> Array:
    """Plain average (not robust: one worker moves it arbitrarily). Baseline for every rule."""
    check_f(f)
    return run_rule(_mean_kernel, inputs, deterministic=deterministic)


def _median_kernel(stack: Stack) -> Array:
    n = stack.n
    return coordinatewise(stack, _median_sorted, kth=tuple(sorted({(n - 1) // 2, n // 2})))


def median(inputs: Any, f: int = 0, *, deterministic: bool = False) -> Array:
    """Coordinate-wise median (Yin et al. 2018, "Byzantine-robust distributed learning: towards
    optimal statistical rates"). Even n: the mean of the two middle values. Needs n > 2f.
    """
    f = check_f(f)
    _check_half("median", inputs, f)
    return run_rule(_median_kernel, inputs, deterministic=deterministic)


def _trimmed_kernel(stack: Stack, f: int) -> Array:
    n = stack.n
    if f == 0:
        return _mean_kernel(stack)

    def fn(s: Array, n: int) -> Array:
        return s[f:n - f].sum(axis=0) / (n - 2 * f)

    return coordinatewise(stack, fn, kth=tuple(sorted({f, n - f - 1})))


def trimmed_mean(inputs: Any, f: int, *, deterministic: bool = False) -> Array:
    """Coordinate-wise trimmed mean (Yin et al. 2018): drop the f largest and f smallest values
    of each coordinate, average the remaining n-2f. Needs n > 2f.
    """
    f = check_f(f)
    _check_half("trimmed_mean", inputs, f)
    return run_rule(_trimmed_kernel, inputs, deterministic=deterministic, f=f)


def meamed_sorted(s: Array, n: int, keep: int) -> Array:
    """Mean of the ``keep`` values closest to the median, per column of a sorted chunk.

    The ``keep`` values closest to the median form a contiguous window of the sorted values;
    among the n-keep+1 windows, the right one has the smallest max distance to the median.
    Ties go to the lowest window start.
    """
    med = _median_sorted(s, n)
    best = _maximum(med - s[0], s[keep - 1] - med)
    best_start = _zeros_like_int(best)
    for st in range(1, n - keep + 1):
        spread = _maximum(med - s[st], s[st + keep - 1] - med)
        better = spread < best
        best = _where(better, spread, best)
        best_start = _where(better, st, best_start)
    offsets = _arange_like(best_start, keep)
    window = _take0(s, best_start[None, :] + offsets[:, None])
    return window.sum(axis=0) / keep


def _arange_like(a: Array, k: int) -> Array:
    if isinstance(a, torch.Tensor):
        return torch.arange(k, device=a.device)
    return np.arange(k)


def _maximum(a: Array, b: Array) -> Array:
    return torch.maximum(a, b) if isinstance(a, torch.Tensor) else np.maximum(a, b)


def _where(c: Array, a: Any, b: Array) -> Array:
    if isinstance(b, torch.Tensor):
        a_t = a if isinstance(a, torch.Tensor) else torch.full_like(b, a)
        return torch.where(c, a_t, b)
    return np.where(c, a, b)


def _zeros_like_int(a: Array) -> Array:
    if isinstance(a, torch.Tensor):
        return torch.zeros(a.shape, dtype=torch.long, device=a.device)
    return np.zeros(a.shape, dtype=np.int64)


def _meamed_kernel(stack: Stack, f: int) -> Array:
    n = stack.n
    keep = n - f
    return coordinatewise(stack, lambda s, n: meamed_sorted(s, n, keep))


def meamed(inputs: Any, f: int, *, deterministic: bool = False) -> Array:
    """MeaMed, mean around the median (Xie, Koyejo & Gupta 2018, "Generalized Byzantine-tolerant
    SGD"): per coordinate, the mean of the n-f values closest to the median. Needs n > 2f.
    """
    f = check_f(f)
    _check_half("meamed", inputs, f)
    return run_rule(_meamed_kernel, inputs, deterministic=deterministic, f=f)


def _check_half(rule: str, inputs: Any, f: int) -> None:
    n = _count(inputs)
    require(n > 2 * f, rule, n, f, "n > 2f")


def _count(inputs: Any) -> int:
    """Number of workers, rejecting empty or non-array input before any condition is checked."""
    if isinstance(inputs, np.ndarray | torch.Tensor):
        n = int(inputs.shape[0]) if inputs.ndim >= 1 else 0
    elif isinstance(inputs, list | tuple):
        n = len(inputs)
    else:
        raise RobustInputError(f"inputs: expected a list of numpy arrays / torch tensors or one "
                               f"stacked array, got {type(inputs).__name__}")
    if n == 0:
        raise RobustInputError("inputs: need at least one worker vector, got none")
    return n


@register_aggregator
class Mean(Aggregator):
    """Plain average; see :func:`mean`."""

    name = "mean"

    def aggregate(self, inputs: Any, **kwargs: Any) -> Array:
        return mean(inputs, self.f, deterministic=self.deterministic)


@register_aggregator
class Median(Aggregator):
    """Coordinate-wise median; see :func:`median`."""

    name = "median"

    def aggregate(self, inputs: Any, **kwargs: Any) -> Array:
        return median(inputs, self.f, deterministic=self.deterministic)


@register_aggregator
class TrimmedMean(Aggregator):
    """Coordinate-wise trimmed mean; see :func:`trimmed_mean`."""

    name = "trimmed_mean"

    def aggregate(self, inputs: Any, **kwargs: Any) -> Array:
        return trimmed_mean(inputs, self.f, deterministic=self.deterministic)


@register_aggregator
class MeaMed(Aggregator):
    """Mean around the median; see :func:`meamed`."""

    name = "meamed"

    def aggregate(self, inputs: Any, **kwargs: Any) -> Array:
        return meamed(inputs, self.f, deterministic=self.deterministic)
