"""Numpy reference for spec/reductions.md §1–§4, §9, §10: LSUM/LDOT, sum, mean, var/std,
vector norms, max/argmax and cumsum.

Written from the spec text, not from the kernels: rows are gathered with ``np.ndindex`` in
logical row-major order of the reduced dims (C3) straight from the (possibly strided) input
array, and every sum walks its elements one by one in increasing index, lane ``i mod 16``.
All rows of an op are processed together (numpy vectors across rows) so that the element loop
stays in the spec's order while the tests stay fast; nothing ever mixes two rows.

Inputs are numpy arrays already in the compute type (float32 or float64, C1); outputs are in
the compute type too — tests apply the one final rounding through torch, as the kernels do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from repops.reference.fma import fma32, fma64

LANES = 16


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Correctly rounded ``a*b + c`` elementwise in the dtype of ``c`` (binary32 or binary64)."""
    c = np.asarray(c)
    if c.dtype == np.float32:
        return fma32(a, b, c)
    a2, b2, c2 = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64), c)
    out = np.empty(c2.shape, np.float64)
    for k in np.ndindex(c2.shape):
        out[k] = fma64(float(a2[k]), float(b2[k]), float(c2[k]))
    return out


def tree(acc: np.ndarray) -> np.ndarray:
    """C4's fixed tree over the lane axis (last axis, 16 entries)."""
    s = [acc[..., i] for i in range(LANES)]
    return (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))) + (
        ((s[8] + s[9]) + (s[10] + s[11])) + ((s[12] + s[13]) + (s[14] + s[15]))
    )


def lsum(rows: np.ndarray) -> np.ndarray:
    """LSUM of each row of ``rows`` (shape ``(R, n)``): lane ``i mod 16`` adds ``x_i``."""
    acc = np.full((rows.shape[0], LANES), -0.0, dtype=rows.dtype)
    for i in range(rows.shape[1]):
        acc[:, i % LANES] = acc[:, i % LANES] + rows[:, i]
    return tree(acc)


def ldot(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """LDOT of each row pair: lane ``i mod 16`` does ``s = fma(x_i, y_i, s)``."""
    acc = np.full((xs.shape[0], LANES), -0.0, dtype=xs.dtype)
    for i in range(xs.shape[1]):
        acc[:, i % LANES] = fma(xs[:, i], ys[:, i], acc[:, i % LANES])
    return tree(acc)


def gather_rows(x: np.ndarray, dims: Sequence[int] | None) -> tuple[np.ndarray, list[int]]:
    """``(R, n)`` rows: kept indices in row-major order, reduced elements in row-major order.

    ``dims=None`` or empty means every dim. Returns the rows and the kept dims' sizes.
    """
    nd = x.ndim
    red = list(range(nd)) if not dims else sorted(d % nd for d in dims)
    keep = [d for d in range(nd) if d not in red]
    kept_sizes = [x.shape[d] for d in keep]
    red_sizes = [x.shape[d] for d in red]
    rows = []
    for kidx in np.ndindex(*kept_sizes):
        row = []
        for ridx in np.ndindex(*red_sizes):
            full = [0] * nd
            for d, i in zip(keep, kidx, strict=True):
                full[d] = i
            for d, i in zip(red, ridx, strict=True):
                full[d] = i
            row.append(x[tuple(full)])
        rows.append(row)
    n = int(np.prod(red_sizes)) if red_sizes else 1
    arr = np.array(rows, dtype=x.dtype).reshape(len(rows), n)
    return arr, kept_sizes


def _shape(x: np.ndarray, dims: Sequence[int] | None, keepdim: bool) -> list[int]:
    red = list(range(x.ndim)) if not dims else [d % x.ndim for d in dims]
    if keepdim:
        return [1 if d in red else s for d, s in enumerate(x.shape)]
    return [s for d, s in enumerate(x.shape) if d not in red]


def sum_reference(x: np.ndarray, dims: Sequence[int] | None, keepdim: bool = False) -> np.ndarray:
    """§2: ``LSUM(row)``."""
    rows, _ = gather_rows(x, dims)
    return lsum(rows).reshape(_shape(x, dims, keepdim))


def mean_reference(x: np.ndarray, dims: Sequence[int] | None, keepdim: bool = False) -> np.ndarray:
    """§2: ``LSUM(row) / T(n)``."""
    rows, _ = gather_rows(x, dims)
    with np.errstate(all="ignore"):
        return (lsum(rows) / x.dtype.type(rows.shape[1])).reshape(_shape(x, dims, keepdim))


def var_reference(
    x: np.ndarray,
    dims: Sequence[int] | None,
    correction: float = 1.0,
    keepdim: bool = False,
    take_sqrt: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """§3: ``(var or std, mean)`` — two-pass, fma squares, divisor ``max(n - c, 0)``."""
    rows, _ = gather_rows(x, dims)
    t = x.dtype.type
    n = rows.shape[1]
    with np.errstate(all="ignore"):
        m = lsum(rows) / t(n)
        d = rows - m[:, None]
        v = ldot(d, d) / t(max(n - correction, 0.0))
        if take_sqrt:
            v = np.sqrt(v)
    shape = _shape(x, dims, keepdim)
    return v.reshape(shape), m.reshape(shape)


def vector_norm_reference(
    x: np.ndarray, ord: float, dims: Sequence[int] | None, keepdim: bool = False
) -> np.ndarray:
    """§4: ord 2, 1, ±inf, 0."""
    rows, _ = gather_rows(x, dims)
    with np.errstate(all="ignore"):
        if ord == 2:
            out = np.sqrt(ldot(rows, rows))
        elif ord == 1:
            out = lsum(np.abs(rows))
        elif ord == 0:
            out = lsum((rows != 0).astype(rows.dtype))
        elif np.isinf(ord):
            a = np.abs(rows)
            out = a.max(axis=1) if ord > 0 else a.min(axis=1)  # NaN propagates; exact
        else:
            raise ValueError(f"no reference for ord={ord}")
    return out.reshape(_shape(x, dims, keepdim))


def select_reference(
    x: np.ndarray, dims: Sequence[int] | None, largest: bool, keepdim: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """§9: ``(values, indices)``: first NaN, else first extreme (``-0.0 == +0.0``)."""
    rows, _ = gather_rows(x, dims)
    idx = np.zeros(rows.shape[0], dtype=np.int64)
    for r in range(rows.shape[0]):
        k = 0
        for j in range(rows.shape[1]):
            v, b = rows[r, j], rows[r, k]
            if np.isnan(v):
                k = j
                break
            if (largest and v > b) or (not largest and v < b):
                k = j
        idx[r] = k
    vals = rows[np.arange(rows.shape[0]), idx]
    shape = _shape(x, dims, keepdim)
    return vals.reshape(shape), idx.reshape(shape)


def cumsum_reference(x: np.ndarray, dim: int) -> np.ndarray:
    """§10: ``y_{-1} = -0.0``, ``y_k = y_{k-1} + x_k``, sequential along ``dim``."""
    xm = np.moveaxis(x, dim, -1)
    out = np.empty(xm.shape, dtype=x.dtype)
    for idx in np.ndindex(*xm.shape[:-1]):
        s = x.dtype.type(-0.0) if x.dtype.kind == "f" else x.dtype.type(0)
        for k in range(xm.shape[-1]):
            s = s + xm[(*idx, k)]
            out[(*idx, k)] = s
    return np.moveaxis(out, -1, dim)
