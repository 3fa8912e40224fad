"""The record of one traced op (:class:`TraceNode`) and of one named input (:class:`LeafRecord`).

A node is what an arbiter needs to re-execute one op and compare its result: the overload name,
the exactly encoded arguments (tensors replaced by references to earlier nodes' outputs or to
named leaves, see :mod:`repops.dispatch.encoding`), the digest, dtype and shape of every tensor
it produced, and -- for the few ops that return a Python number (``aten._local_scalar_dense``,
behind ``.item()``) -- that number, exactly encoded. verde commits to a Merkle tree over these
records (its leaf bytes are the canonical JSON of :meth:`TraceNode.to_json`).

This is the one node record of the code base: repops records it, verde commits to it and its
arbiter replays it with :func:`repops.execute_node`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from repops.dispatch.encoding import RefKey, TraceEncodingError, dtype_name, iter_refs
from repops.errors import RepopsError

DigestFn = Callable[[torch.Tensor], bytes]

_DIGEST_DOMAIN = b"repops.tensor.v1\x00"

#: Output metadata of one tensor output: (dtype name, shape).
OutputMeta = tuple[str, tuple[int, ...]]


def default_digest(t: torch.Tensor) -> bytes:
    """SHA-256 over a domain tag, dtype, shape and the contiguous little-endian bytes.

    NaNs are canonicalised to one quiet NaN first, since SPEC.md C6 leaves payloads open.
    verde passes its own ``proofs.tensor_digest`` instead; this is the stand-alone default.
    """
    if sys.byteorder != "little":
        raise RepopsError("default_digest assumes a little-endian host")
    data = t.detach().contiguous()
    if data.is_floating_point() and bool(torch.isnan(data).any()):
        data = torch.where(torch.isnan(data), torch.full((), float("nan"), dtype=data.dtype), data)
    header = json.dumps([dtype_name(t.dtype), list(t.shape)], separators=(",", ":")).encode()
    h = hashlib.sha256(_DIGEST_DOMAIN + header + b"\x00")
    h.update(data.reshape(-1).view(torch.uint8).numpy().data)
    return h.digest()


@dataclass(frozen=True)
class TraceNode:
    """One traced op.

    ``args`` is ``{"args": [...], "kwargs": {...}}`` (plus ``"rng"``, the Philox stream state
    before the draw, for random ops) with tensors replaced by ``{"node": i, "out": j}`` /
    ``{"leaf": name}``. ``output_digests`` and ``output_meta`` describe the tensors the op
    produced, in order (``None`` digests in structure-only traces). ``scalar`` is the exactly
    encoded Python value an op returned instead of tensors (``None`` for every other op).
    """

    index: int
    op: str
    args: dict[str, Any]
    output_digests: tuple[bytes | None, ...]
    output_meta: tuple[OutputMeta, ...]
    scalar: Any = None

    def input_refs(self) -> list[RefKey]:
        """Every tensor this node reads, as hashable refs, in argument order."""
        return iter_refs(self.args)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (digests as hex, None for structure-only traces). ``scalar``
        appears only for ops that returned a Python value."""
        doc: dict[str, Any] = {
            "index": self.index,
            "op": self.op,
            "args": self.args,
            "output_digests": [None if d is None else d.hex() for d in self.output_digests],
            "output_meta": [[dt, list(shape)] for dt, shape in self.output_meta],
        }
        if self.scalar is not None:
            doc["scalar"] = self.scalar
        return doc

    @classmethod
    def from_json(cls, data: Any) -> TraceNode:
        """Inverse of :meth:`to_json`, strict about types; TraceEncodingError when malformed."""
        if not isinstance(data, Mapping):
            raise TraceEncodingError(f"a trace node record is an object, got {type(data).__name__}")
        fields = {"index", "op", "args", "output_digests", "output_meta"}
        if not fields <= set(data) or not set(data) <= fields | {"scalar"}:
            raise TraceEncodingError(
                f"a trace node record has the fields {sorted(fields)} (and optionally 'scalar'),"
                f" got {sorted(data)}"
            )
        index, op, args = data["index"], data["op"], data["args"]
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise TraceEncodingError(f"trace node index must be an int >= 0, got {index!r}")
        if not isinstance(op, str) or not op:
            raise TraceEncodingError(f"trace node op must be a non-empty string, got {op!r}")
        if not isinstance(args, dict):
            raise TraceEncodingError("trace node args must be an object")
        digests, meta = data["output_digests"], data["output_meta"]
        if not isinstance(digests, list) or not isinstance(meta, list):
            raise TraceEncodingError("trace node output_digests and output_meta must be lists")
        return cls(index, op, args, tuple(_digest(d) for d in digests),
                   tuple(_meta(m) for m in meta), data.get("scalar"))

    def structure(self) -> dict[str, Any]:
        """The node without its values: what a shape-only replay can derive and must match."""
        doc = self.to_json()
        del doc["output_digests"]
        return doc

    def without_values(self) -> TraceNode:
        """The same node with every output digest unknown (as a structure-only trace has it)."""
        return TraceNode(self.index, self.op, self.args, (None,) * len(self.output_digests),
                         self.output_meta, self.scalar)


def _digest(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TraceEncodingError(f"an output digest is a hex string or null, got {value!r}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise TraceEncodingError(f"output digest {value[:80]!r} is not hex") from None


def _meta(value: Any) -> OutputMeta:
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str)
            or not isinstance(value[1], list)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                       for s in value[1])):
        raise TraceEncodingError(f"output meta is [dtype name, [sizes]], got {value!r}")
    return value[0], tuple(value[1])


@dataclass(frozen=True)
class LeafRecord:
    """A named input tensor of the trace: registered by the caller or ``anon:<k>``."""

    name: str
    digest: bytes | None
    dtype: str
    shape: tuple[int, ...]
