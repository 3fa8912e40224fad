"""The canonical tensor digest (``proofs.digest``) of a tensor whose bytes arrive in pieces.

Why: a provider receives uploaded states as a stream of raw chunks and writes them to disk; it
must know the state's root when the stream ends without reading the whole state back into
memory. ``TensorDigester`` computes exactly ``tensor_digest`` of the tensor those bytes make,
fed piece by piece: chunk boundaries may fall anywhere, even inside one element, so the
digester keeps the few trailing bytes of an incomplete element until the next piece.

The bytes are the tensor's little-endian, row-major data in its storage dtype (bfloat16 as its
16-bit patterns), which is how ``verde.protocol.peers.messages.TensorBlob`` sends them; every
NaN is hashed as the canonical NaN and every non-zero bool byte as 1, as ``tensor_digest``
does, so the digest does not depend on how the data was split.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from proofs.digest import _FORMATS, _canonical_nans, tensor_header
from proofs.errors import MalformedInput, UnsupportedTensorError


class TensorDigester:
    """Incremental ``tensor_digest`` of a ``dtype_name`` tensor of ``shape`` (see module)."""

    def __init__(self, dtype_name: str, shape: tuple[int, ...]) -> None:
        if dtype_name not in _FORMATS:
            raise UnsupportedTensorError(f"dtype {dtype_name!r} is not supported")
        if any(not isinstance(d, int) or d < 0 for d in shape):
            raise MalformedInput(f"shape {list(shape)} has a negative or non-integer dimension")
        self.dtype_name = dtype_name
        self._storage, self._nan_bits = _FORMATS[dtype_name]
        self.nbytes = math.prod(shape) * self._storage.itemsize
        self._hasher = hashlib.sha256(tensor_header(dtype_name, tuple(shape)))
        self._pending = b""  # the start of an element split across two pieces
        self.received = 0

    def update(self, data: bytes | memoryview) -> None:
        """Hash the next ``data`` bytes of the tensor; more than it holds is ``MalformedInput``."""
        data = memoryview(data).cast("B")  # count bytes, whatever the buffer's item type
        if self.received + len(data) > self.nbytes:
            raise MalformedInput(f"{self.received + len(data)} bytes given for a "
                                 f"{self.dtype_name} tensor of {self.nbytes} bytes")
        self.received += len(data)
        if self._pending:
            data = self._pending + bytes(data)
        itemsize = self._storage.itemsize
        whole = len(data) - len(data) % itemsize
        self._pending = bytes(data[whole:])
        if whole:
            self._hasher.update(self._canonical(memoryview(data)[:whole]))

    def _canonical(self, data: memoryview) -> memoryview:
        flat = np.frombuffer(data, dtype=self._storage)
        if self.dtype_name == "bool":
            raw = flat.view(np.uint8)
            return (raw if raw.max() <= 1 else (raw != 0).view(np.uint8)).data.cast("B")
        if self._nan_bits is None:
            return data
        return _canonical_nans(self.dtype_name, flat, self._nan_bits).data.cast("B")

    def digest(self) -> bytes:
        """The 32-byte digest; ``MalformedInput`` unless exactly ``nbytes`` bytes were given."""
        if self.received != self.nbytes:
            raise MalformedInput(f"{self.received} bytes given for a {self.dtype_name} tensor "
                                 f"of {self.nbytes} bytes")
        return self._hasher.digest()
