"""ArrayRecord <-> one flat vector, the form verde's rules aggregate.

A model travels in Flower as an ``ArrayRecord`` (named arrays). Robust rules compare whole
update vectors (distances, norms), so every client's record is laid end to end in the global
record's key order. Only floating arrays are aggregated; the others (e.g. BatchNorm's integer
step counters) are carried separately (the strategy keeps the global model's).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from verde.engines.flower.npy_view import array_view

try:
    from flwr.app import Array, ArrayRecord
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("verde.engines.flower needs Flower: pip install 'verde[flower]'"
                      ) from exc


class RecordLayoutError(ValueError):
    """A client's ArrayRecord does not have the global record's keys, shapes or dtypes."""


@dataclass(frozen=True)
class Layout:
    """Keys, shapes and dtypes of a record, and where each floating array sits in the vector."""

    keys: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]
    floating: tuple[bool, ...]
    vector_dtype: np.dtype

    @property
    def size(self) -> int:
        return sum(int(np.prod(s)) for s, fl in zip(self.shapes, self.floating, strict=True)
                   if fl)


def layout_of(record: ArrayRecord) -> Layout:
    return _layout(tuple(record.keys()), [array_view(record[k]) for k in record])


def _layout(keys: tuple[str, ...], arrays: list[np.ndarray]) -> Layout:
    floating = tuple(bool(np.issubdtype(a.dtype, np.floating)) for a in arrays)
    float_dtypes = [a.dtype for a, fl in zip(arrays, floating, strict=True) if fl]
    vector_dtype = np.result_type(*float_dtypes) if float_dtypes else np.dtype(np.float32)
    return Layout(keys, tuple(tuple(a.shape) for a in arrays),
                  tuple(a.dtype for a in arrays), floating, np.dtype(vector_dtype))


def _checked(record: ArrayRecord, lay: Layout, read: list[np.ndarray] | None = None,
             ) -> Iterator[tuple[np.ndarray, bool]]:
    """Each array of ``record`` (as numpy; ``read``: already converted, in key order) with its
    floating flag, checked against ``lay``."""
    if tuple(record.keys()) != lay.keys:
        raise RecordLayoutError(f"array keys {sorted(record.keys())} differ from the global "
                                f"model's {sorted(lay.keys)}")
    for i, (key, shape, dtype, fl) in enumerate(zip(lay.keys, lay.shapes, lay.dtypes,
                                                    lay.floating, strict=True)):
        a = read[i] if read is not None else array_view(record[key])
        if tuple(a.shape) != shape or a.dtype != dtype:
            raise RecordLayoutError(f"array {key!r} is {a.dtype}{list(a.shape)}, the global "
                                    f"model's is {dtype}{list(shape)}")
        yield a, fl


def flatten_arrays(record: ArrayRecord, layout: Layout | None = None
                   ) -> tuple[np.ndarray, list[np.ndarray], Layout]:
    """(floating arrays as one vector, the other arrays, layout); checked against ``layout``.

    Raises :class:`RecordLayoutError` naming the first key that does not match.
    """
    read = None
    if layout is None:  # read each array once
        read = [array_view(record[k]) for k in record]
        layout = _layout(tuple(record.keys()), read)
    parts: list[np.ndarray] = []
    others: list[np.ndarray] = []
    for a, fl in _checked(record, layout, read):
        if fl:
            parts.append(a.reshape(-1).astype(layout.vector_dtype, copy=False))
        else:
            others.append(a)
    vec = np.concatenate(parts) if parts else np.zeros(0, layout.vector_dtype)
    return vec, others, layout


def floating_parts(record: ArrayRecord, layout: Layout) -> list[np.ndarray]:
    """The record's floating arrays as flat read-only views (no copy), in the layout's order:
    the pieces of its vector. Raises :class:`RecordLayoutError` like :func:`flatten_arrays`."""
    return [a.reshape(-1) for a, fl in _checked(record, layout) if fl]


def write_differences(parts: list[list[np.ndarray]], minus: np.ndarray, out: np.ndarray,
                      a: int, b: int) -> None:
    """``out[i, a:b] = vector_i[a:b] - minus[a:b]`` for every row i, where ``vector_i`` is the
    concatenation of ``parts[i]`` (every row split at the same offsets), never built whole."""
    if not parts:
        return
    at = 0
    for piece, size in enumerate(p.size for p in parts[0]):
        lo, hi = max(a, at), min(b, at + size)
        if lo < hi:
            for i, row in enumerate(parts):
                np.subtract(row[piece][lo - at:hi - at], minus[lo:hi], out=out[i, lo:hi])
        at += size


def unflatten_arrays(vec: np.ndarray, others: list[np.ndarray], layout: Layout) -> ArrayRecord:
    """The inverse of :func:`flatten_arrays`: a new ArrayRecord in the layout's key order."""
    out: dict[str, Array] = {}
    at, other = 0, iter(others)
    for key, shape, dtype, fl in zip(layout.keys, layout.shapes, layout.dtypes, layout.floating,
                                     strict=True):
        if fl:
            size = int(np.prod(shape))
            out[key] = Array(np.ascontiguousarray(vec[at:at + size].reshape(shape), dtype=dtype))
            at += size
        else:
            out[key] = Array(np.ascontiguousarray(next(other)))
    return ArrayRecord(out)
