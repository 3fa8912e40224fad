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

from verde.robust._core import COORDINATE_CHUNK, Array, Stack, check_f, require, to_numpy
from verde.robust.base import rule_class, run_rule
from verde.robust.errors import RobustInputError
from verde.robust.sorted_lanes import meamed_means, trimmed_sums
from verde.robust.sorting_network import NETWORK_BLOCK, NETWORK_MAX_N, network_sorted_rows

SortedFn = Callable[[Array, int], Array]

#: Coordinates per chunk on numpy's sort path: a sorted chunk of up to a few hundred workers
#: stays in cache while ``fn`` reads it (larger chunks measured slower at n=100 for MeaMed and
#: the trimmed mean, the same for the median).
SORTED_CHUNK = 1 << 13


def _f64(a: Array) -> Array:
    return a.to(torch.float64) if isinstance(a, torch.Tensor) else a.astype(np.float64)


def _sort_lanes_numpy(x: np.ndarray) -> np.ndarray:
    """(n, cols) -> a new (cols, n) array sorted along the last axis (contiguous lanes: SIMD
    sorts). Always a copy: when ``x`` is column-major (a transposed array or tensor of the
    caller's), ``x.T`` is already contiguous and sorting it in place would reorder the
    caller's data."""
    # numpy's float16 sort is scalar; float32 holds every float16
    c = np.array(x.T, dtype=np.float32 if x.dtype == np.float16 else x.dtype, order="C")
    c.sort(axis=1)
    return c


def coordinatewise(stack: Stack, fn: SortedFn) -> Array:
    """Apply ``fn(sorted_chunk, n) -> (cols,)`` to coordinate chunks sorted over the workers.

    A chunk is laid out ``(cols, n)``: each coordinate's n values contiguous and sorted
    (ascending, NaN last). Sorting is exact, so it runs in the input dtype; ``fn`` averages in
    float64 and the result is cast back to the input dtype. numpy arrays and CPU tensors are
    sorted by numpy (zero-copy view; its vectorised sort is several times faster than
    ``np.sort(axis=0)`` or torch's CPU sort) or, for at most ``NETWORK_MAX_N`` workers and no
    NaN, ordered by a sorting network over whole rows (:mod:`verde.robust.sorting_network`:
    the same values in the same order, several times faster for few workers); GPU tensors and
    the deterministic mode use a stable ``torch.sort``.
    """
    x = stack.data
    n, d = stack.n, stack.d
    via_numpy = not stack.is_torch or (x.device.type == "cpu" and not stack.deterministic)
    if stack.is_torch and not via_numpy:
        out_t = torch.empty(d, dtype=x.dtype, device=x.device)
        for a in range(0, d, COORDINATE_CHUNK):
            b = min(a + COORDINATE_CHUNK, d)
            s = torch.sort(x[:, a:b].T.contiguous(), dim=1, stable=True).values
            out_t[a:b] = fn(s, n).to(x.dtype)
        return out_t
    xn = to_numpy(x) if stack.is_torch else x
    out = np.empty(d, dtype=xn.dtype)
    network = n <= NETWORK_MAX_N
    step = NETWORK_BLOCK if network else SORTED_CHUNK
    for a in range(0, d, step):
        b = min(a + step, d)
        chunk = xn[:, a:b]
        if network and not np.isnan(chunk).any():  # minimum/maximum propagate NaN: sort those
            rows = network_sorted_rows(chunk.astype(np.float32) if chunk.dtype == np.float16
                                       else chunk)
            out[a:b] = fn(rows.T, n)  # (cols, n) view: s[:, k] is the contiguous row k
        else:
            out[a:b] = fn(_sort_lanes_numpy(chunk), n)
    if stack.is_torch:
        return torch.from_numpy(out).to(x.dtype)
    return out


def _median_sorted(s: Array, n: int) -> Array:
    return _f64(s[:, (n - 1) // 2]) * 0.5 + _f64(s[:, n // 2]) * 0.5


def _mean_kernel(stack: Stack) -> Array:
    """Native-dtype sum for float32/float64 (as np.mean does); float64 for half precision.

    With weights (example counts) it is the weighted average, as FedAvg computes it.
    """
    if stack.weights is not None:
        return stack.subset_average(np.arange(stack.n))
    x = stack.data
    if stack.is_torch:
        wide = x.dtype in (torch.float16, torch.bfloat16)
        total = x.sum(dim=0, dtype=torch.float64 if wide else x.dtype)
    else:
        total = x.sum(axis=0, dtype=np.float64 if x.dtype == np.float16 else x.dtype)
    total /= stack.n
    return total


def mean(inputs: Any, f: int = 0, *, weights: Any = None, deterministic: bool = False) -> Array:
    """Plain average (not robust: one worker moves it arbitrarily). Baseline for every rule.

    ``weights``: one non-negative weight per worker (e.g. example counts, as in FedAvg).
    """
    check_f(f)
    return run_rule(_mean_kernel, inputs, deterministic=deterministic, weights=weights)


def _median_kernel(stack: Stack) -> Array:
    return coordinatewise(stack, _median_sorted)


def median(inputs: Any, f: int = 0, *, deterministic: bool = False) -> Array:
    """Coordinate-wise median (Yin et al. 2018, "Byzantine-robust distributed learning: towards
    optimal statistical rates"). Even n: the mean of the two middle values. Needs n > 2f.
    """
    f = check_f(f)
    _check_half("median", inputs, f)
    return run_rule(_median_kernel, inputs, deterministic=deterministic)


def _trimmed_kernel(stack: Stack, f: int) -> Array:
    if f == 0:
        return _mean_kernel(stack)

    def fn(s: Array, n: int) -> Array:
        if isinstance(s, np.ndarray):  # kept values added in ascending order, compiled
            return trimmed_sums(s, f, n - f) / (n - 2 * f)
        return _f64(s[:, f:n - f]).sum(axis=1) / (n - 2 * f)

    return coordinatewise(stack, fn)


def trimmed_mean(inputs: Any, f: int, *, deterministic: bool = False) -> Array:
    """Coordinate-wise trimmed mean (Yin et al. 2018): drop the f largest and f smallest values
    of each coordinate, average the remaining n-2f. Needs n > 2f.
    """
    f = check_f(f)
    _check_half("trimmed_mean", inputs, f)
    return run_rule(_trimmed_kernel, inputs, deterministic=deterministic, f=f)


def meamed_sorted(s: Array, n: int, keep: int) -> Array:
    """Mean of the ``keep`` values closest to the median, per row of a sorted ``(cols, n)``.

    The ``keep`` values closest to the median form a contiguous window of the sorted values;
    among the n-keep+1 windows, the right one has the smallest max distance to the median.
    Ties go to the lowest window start. The window's values are added in ascending order to
    +0.0 (the values outside it masked to +0.0, so no gather is needed): a -inf or NaN outside
    the window cannot reach the result. Numpy input runs the same steps compiled
    (:func:`verde.robust.sorted_lanes.meamed_means`, same bits).
    """
    wide = _f64(s)  # one conversion; keeps the layout, so a column stays contiguous if it was
    med = wide[:, (n - 1) // 2] * 0.5 + wide[:, n // 2] * 0.5
    best = _maximum(med - wide[:, 0], wide[:, keep - 1] - med)
    best_start = _zeros_like_int(best)
    for st in range(1, n - keep + 1):
        spread = _maximum(med - wide[:, st], wide[:, st + keep - 1] - med)
        better = spread < best
        best = _where(better, spread, best)
        best_start = _where(better, st, best_start)
    # value k is in the window when best_start <= k < best_start + keep; values in every
    # window (last_start <= k < keep) need no mask.
    total = _zeros_like(med)
    last_start = n - keep
    for k in range(n):
        if last_start <= k < keep:
            total = total + wide[:, k]
        else:
            inside = (best_start <= k) & (best_start + keep > k)
            total = total + _masked(inside, wide[:, k])
    return total / keep


def _masked(c: Array, a: Array) -> Array:
    """``a`` where ``c``, else 0."""
    if isinstance(a, torch.Tensor):
        return torch.where(c, a, torch.zeros((), dtype=a.dtype, device=a.device))
    return np.where(c, a, 0.0)


def _maximum(a: Array, b: Array) -> Array:
    return torch.maximum(a, b) if isinstance(a, torch.Tensor) else np.maximum(a, b)


def _where(c: Array, a: Any, b: Array) -> Array:
    if isinstance(b, torch.Tensor):
        a_t = a if isinstance(a, torch.Tensor) else torch.full_like(b, a)
        return torch.where(c, a_t, b)
    return np.where(c, a, b)


def _zeros_like(a: Array) -> Array:
    """+0.0 in ``a``'s shape, type, dtype and device."""
    return torch.zeros_like(a) if isinstance(a, torch.Tensor) else np.zeros_like(a)


def _zeros_like_int(a: Array) -> Array:
    if isinstance(a, torch.Tensor):
        return torch.zeros(a.shape, dtype=torch.long, device=a.device)
    return np.zeros(a.shape, dtype=np.int64)


def _meamed_kernel(stack: Stack, f: int) -> Array:
    keep = stack.n - f

    def fn(s: Array, n: int) -> Array:
        if isinstance(s, np.ndarray):  # the same bits, compiled (verde.robust.sorted_lanes)
            return meamed_means(s, keep)
        return meamed_sorted(s, n, keep)

    return coordinatewise(stack, fn)


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


Mean = rule_class("mean", mean, "Plain average", call_kwargs=("weights",),
                  supports_weights=True, coordinatewise=True)
Median = rule_class("median", median, "Coordinate-wise median", coordinatewise=True)
TrimmedMean = rule_class("trimmed_mean", trimmed_mean, "Coordinate-wise trimmed mean",
                         coordinatewise=True)
MeaMed = rule_class("meamed", meamed, "Mean around the median", class_name="MeaMed",
                    coordinatewise=True)
