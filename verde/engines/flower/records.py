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
    return _layout(tuple(record.keys()), [record[k].numpy() for k in record])


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
        a = read[i] if read is not None else record[key].numpy()
        if tuple(a.shape) != shape or a.dtype != dtype:
            raise RecordLayoutError(f"array {key!r} is {a.dtype}{list(a.shape)}, the global "
                                    f"model's is {dtype}{list(shape)}")
        yield a, fl


def flatten_arrays(record: ArrayRecord, layout: Layout | None = None, *,
                   out: np.ndarray | None = None, minus: np.ndarray | None = None
                   ) -> tuple[np.ndarray, list[np.ndarray], Layout]:
    """(floating arrays as one vector, the other arrays, layout); checked against ``layout``.

    ``out``: write the vector there (one copy, no temporaries); ``minus``: subtract this
    vector on the way (the global model, giving the update). Raises
    :class:`RecordLayoutError` naming the first key that does not match.
    """
    read = None
    if layout is None:  # convert each array once (Flower deserialises on every .numpy())
        read = [record[k].numpy() for k in record]
        layout = _layout(tuple(record.keys()), read)
    lay = layout
    others: list[np.ndarray] = []
    if out is None:
        parts = []
        for a, fl in _checked(record, lay, read):
            if fl:
                parts.append(a.reshape(-1).astype(lay.vector_dtype, copy=False))
            else:
                others.append(a)
        vec = np.concatenate(parts) if parts else np.zeros(0, lay.vector_dtype)
        return (vec if minus is None else vec - minus), others, lay
    at = 0
    for a, fl in _checked(record, lay, read):
        if not fl:
            others.append(a)
            continue
        dst = out[at:at + a.size]
        if minus is None:
            dst[:] = a.reshape(-1)
        else:
            np.subtract(a.reshape(-1), minus[at:at + a.size], out=dst)
        at += a.size
    return out, others, lay


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
