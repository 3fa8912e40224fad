"""Canonical SHA-256 digest of a tensor (numpy array or torch tensor).

Why: refereed delegation (Verde, Arun et al. 2025, arXiv 2502.19405) compares providers by the
digests of their checkpoints and of every operator output. Two providers holding the same bits
must produce the same digest whatever their library, memory layout or machine, and different
bits (or the same bits read as another dtype or shape) must give different digests.

The digest is ``SHA-256(header || data)`` with

* ``header = b"verde/tensor/v1\\x00" || dtype name (ASCII) || b"\\x00" ||
  uint64_le(ndim) || uint64_le(dim_0) || ... || uint64_le(dim_{ndim-1})``. The fixed domain tag
  keeps tensor digests apart from every other hash in verde (domain separation); dtype and shape
  are bound so a float32 ``[2, 3]`` never collides with an int32 ``[3, 2]`` of the same bytes.
* ``data`` = the elements in logical row-major (C) order, each in little-endian byte order — a
  transposed view and its contiguous copy digest the same.
* bool is one byte per element, 0 or 1 (any non-zero byte counts as 1).
* NaN canonicalisation: every NaN (any sign or payload) is hashed as the canonical quiet NaN
  (float16 ``0x7e00``, bfloat16 ``0x7fc0``, float32 ``0x7fc00000``, float64
  ``0x7ff8000000000000``). Negative zero is *not* canonicalised: it is a different value bit for
  bit, and reproducible operators promise bits.

Dtype names: ``bool``, ``int8``, ``uint8``, ``int16``, ``uint16``, ``int32``, ``uint32``,
``int64``, ``uint64``, ``float16``, ``bfloat16``, ``float32``, ``float64``; numpy and torch
tensors with the same dtype, shape and values digest the same. Complex, float8, quantized,
sparse and meta tensors and masked arrays are rejected with ``UnsupportedTensorError``. A tensor
on an accelerator is copied to the CPU first (the one copy that cannot be avoided).

Speed: contiguous little-endian data is fed to hashlib through a memoryview in 1 MiB chunks, no
``tobytes()``; a NaN check per chunk (one vectorised ``max``, which propagates NaN) runs while
the chunk is in cache, and only chunks that contain a NaN are copied. Non-contiguous input is
copied one slab of leading-axis rows at a time, so memory stays bounded. proofs does not import
torch: torch tensors are recognised by their type's module, and their dtype constants are read
from the already imported ``sys.modules["torch"]``; bfloat16 is read through an int16 view of
the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from proofs.errors import UnsupportedTensorError

TENSOR_DOMAIN = b"verde/tensor/v1\x00"
_CHUNK_BYTES = 1 << 20

# name -> (numpy storage dtype, little-endian; canonical NaN bit pattern or None)
_FORMATS: dict[str, tuple[np.dtype, int | None]] = {
    "bool": (np.dtype("|b1"), None),
    "int8": (np.dtype("|i1"), None),
    "uint8": (np.dtype("|u1"), None),
    "int16": (np.dtype("<i2"), None),
    "uint16": (np.dtype("<u2"), None),
    "int32": (np.dtype("<i4"), None),
    "uint32": (np.dtype("<u4"), None),
    "int64": (np.dtype("<i8"), None),
    "uint64": (np.dtype("<u8"), None),
    "float16": (np.dtype("<f2"), 0x7E00),
    "bfloat16": (np.dtype("<u2"), 0x7FC0),  # stored as its raw 16-bit pattern
    "float32": (np.dtype("<f4"), 0x7FC00000),
    "float64": (np.dtype("<f8"), 0x7FF8000000000000),
}
_UINT_OF_SIZE: dict[int, np.dtype[Any]] = {
    2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8"),
}
_TORCH_NAMES = (
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "bfloat16", "float32", "float64",
)  # fmt: skip


def tensor_digest(x: Any) -> bytes:
    """Return the 32-byte canonical digest of a numpy array or torch tensor."""
    name, array = canonical_array(x)
    header = tensor_header(name, array.shape)
    storage, nan_bits = _FORMATS[name]
    if (
        0 < array.nbytes <= _CHUNK_BYTES
        and name != "bool"
        and array.dtype == storage
        and array.flags.c_contiguous
    ):
        # One chunk, already canonical but for NaNs: parameters and optimizer state of small
        # models, digested every training step, where per-call overhead is most of the cost.
        flat = array.reshape(-1)
        if nan_bits is not None:
            flat = _canonical_nans(name, flat, nan_bits)
        hasher = hashlib.sha256(header)
        hasher.update(flat.data.cast("B"))  # no copy of the data, unlike header + data
        return hasher.digest()
    hasher = hashlib.sha256(header)
    for chunk in _canonical_chunks(name, array):
        hasher.update(chunk)
    return hasher.digest()


def digest_hex(x: Any) -> str:
    """``tensor_digest(x).hex()``."""
    return tensor_digest(x).hex()


def tensor_header(dtype_name: str, shape: tuple[int, ...]) -> bytes:
    """The bytes hashed before the data: domain tag, dtype name, ndim and dims."""
    return _cached_header(dtype_name, tuple(shape))


@functools.lru_cache(maxsize=4096)
def _cached_header(dtype_name: str, shape: tuple[int, ...]) -> bytes:
    # Cached: a training run digests the same few shapes every step.
    if dtype_name not in _FORMATS:
        raise UnsupportedTensorError(f"dtype {dtype_name!r} is not supported")
    dims = struct.pack(f"<{len(shape) + 1}Q", len(shape), *shape)
    return TENSOR_DOMAIN + dtype_name.encode("ascii") + b"\x00" + dims


def canonical_array(x: Any) -> tuple[str, np.ndarray]:
    """Return ``(dtype name, numpy array)`` viewing ``x``'s values, copying only if needed.

    The array has the storage dtype of ``_FORMATS`` (bfloat16 as uint16 bit patterns) but may
    still be non-contiguous or big-endian; ``_canonical_chunks`` deals with that.
    """
    if isinstance(x, np.generic):
        x = np.asarray(x)
    if isinstance(x, np.ma.MaskedArray):
        raise UnsupportedTensorError("masked arrays are not supported: fill or drop the mask")
    if isinstance(x, np.ndarray):
        return _numpy_name(x), x
    if type(x).__module__.startswith("torch") and "torch" in sys.modules:
        return _from_torch(x)
    raise UnsupportedTensorError(
        f"expected a numpy array or a torch tensor, got {type(x).__module__}.{type(x).__name__}"
    )


def _numpy_name(array: np.ndarray) -> str:
    kind, size = array.dtype.kind, array.dtype.itemsize
    if array.dtype.fields is not None or array.dtype.subdtype is not None:
        raise UnsupportedTensorError(f"structured dtype {array.dtype} is not supported")
    if kind == "b":
        return "bool"
    if kind in "iu" and size in (1, 2, 4, 8):
        return f"{'u' if kind == 'u' else ''}int{size * 8}"
    if kind == "f" and size in (2, 4, 8):
        return f"float{size * 8}"
    raise UnsupportedTensorError(f"numpy dtype {array.dtype} is not supported")


def _from_torch(t: Any) -> tuple[str, np.ndarray]:
    torch = sys.modules["torch"]
    if not isinstance(t, torch.Tensor):
        raise UnsupportedTensorError(f"{type(t).__name__} from torch is not a tensor")
    if t.layout != torch.strided:
        raise UnsupportedTensorError(f"torch layout {t.layout} is not supported (dense only)")
    device = t.device.type
    if device == "meta":
        raise UnsupportedTensorError("a meta tensor has no values to digest")
    name = _torch_dtype_names(torch).get(t.dtype)
    if name is None:
        raise UnsupportedTensorError(f"torch dtype {t.dtype} is not supported")
    # Each step below costs about a microsecond, which matters for the many small tensors of a
    # state digested every training step, so each runs only when it changes something.
    if t.requires_grad:
        t = t.detach()
    if device != "cpu":
        t = t.cpu()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    if name == "bfloat16":
        t = t.view(torch.int16)  # same bytes; numpy has no bfloat16
    try:
        array = t.numpy()
    except (RuntimeError, TypeError) as exc:  # e.g. tensor subclasses without storage
        raise UnsupportedTensorError(f"cannot read the values of this tensor: {exc}") from exc
    if name == "bfloat16":
        array = array.view(np.uint16)
    return name, array


@functools.lru_cache(maxsize=1)
def _torch_dtype_names(torch: Any) -> dict[Any, str]:
    """torch dtype -> canonical name, built on first use (torch is never imported here)."""
    return {getattr(torch, n): n for n in _TORCH_NAMES if hasattr(torch, n)}


def _canonical_chunks(name: str, array: np.ndarray) -> Iterator[memoryview]:
    """Yield the canonical data bytes (little-endian, C order, NaNs canonical) in chunks."""
    storage, nan_bits = _FORMATS[name]
    for block in _contiguous_blocks(array, storage):
        flat = block.reshape(-1)
        if name == "bool":
            # A bool byte other than 0/1 (made through a uint8 view) still means True.
            raw = flat.view(np.uint8)
            yield (raw if raw.max() <= 1 else (raw != 0).view(np.uint8)).data.cast("B")
            continue
        if nan_bits is None:
            yield flat.data.cast("B")
            continue
        step = max(1, _CHUNK_BYTES // flat.itemsize)
        for start in range(0, flat.size, step):
            part = flat[start : start + step]
            yield _canonical_nans(name, part, nan_bits).data.cast("B")


def _contiguous_blocks(array: np.ndarray, storage: np.dtype) -> Iterator[np.ndarray]:
    """Yield C-contiguous little-endian blocks that together are ``array`` in C order.

    Contiguous input in the storage dtype is yielded as it is (no copy). Otherwise slabs of
    leading-axis rows of about ``_CHUNK_BYTES`` are copied one at a time (rows larger than
    that are split along the next axis), converting the byte order where needed.
    """
    if array.flags.c_contiguous and array.dtype == storage:
        if array.size:
            yield array
        return
    if array.ndim == 0:
        yield np.ascontiguousarray(array.reshape(1), dtype=storage)
        return
    if array.size == 0:
        return
    row_bytes = (array.size // array.shape[0]) * storage.itemsize
    if array.ndim > 1 and row_bytes > _CHUNK_BYTES:
        for i in range(array.shape[0]):
            yield from _contiguous_blocks(array[i], storage)
        return
    rows = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, array.shape[0], rows):
        yield np.ascontiguousarray(array[start : start + rows], dtype=storage)


def _canonical_nans(name: str, part: np.ndarray, nan_bits: int) -> np.ndarray:
    """Return ``part`` with every NaN replaced by the canonical NaN (a copy only if needed)."""
    if name == "bfloat16":
        mask = (part & 0x7FFF) > 0x7F80
        if not mask.any():
            return part
        fixed = part.copy()
        fixed[mask] = nan_bits
        return fixed
    if not math.isnan(part.max()):  # max propagates NaN; math.isnan is the cheap scalar test
        return part
    bits = part.view(_UINT_OF_SIZE[part.itemsize])
    canonical: np.ndarray = bits.copy()
    canonical[np.isnan(part)] = nan_bits
    return canonical
