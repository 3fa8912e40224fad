"""The tracing hook: a record of every op the reproducible mode runs, as verde's dispute graph.

Each op becomes a :class:`TraceNode` (index, overload name, exactly encoded arguments in which
tensors are references to earlier nodes' outputs or to named leaves, and a digest plus dtype and
shape per output). verde commits to a Merkle tree over ``node.canonical_bytes()``; when two
parties disagree, the arbiter re-executes the first differing node with
:func:`repops.execute_node` on inputs it obtains by reference.

Tensor identity: autograd unpacks saved tensors into fresh tensor objects that share the
original's storage and version counter, and views share their base's storage. A tensor is
therefore identified by (storage, storage offset, shape, strides, dtype) plus its version
counter: an in-place op bumps the version, so a stale entry is never matched, and a storage
weak reference makes sure a freed and re-used storage address is never mistaken for the old
one. A tensor that no traced op produced and no one registered becomes a leaf ``anon:<k>``
with its digest recorded, so nothing an op reads is untracked.

Structure-only tracing: on meta tensors or FakeTensors no values exist; digests are None and
everything else is recorded the same, so the arbiter can derive the expected graph itself.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import _disable_current_modes

from repops.dispatch.encoding import (
    RefKey,
    TraceEncodingError,
    dtype_name,
    encode_call,
    iter_refs,
)
from repops.errors import RepopsError

DigestFn = Callable[[torch.Tensor], bytes]

_DIGEST_DOMAIN = b"repops.tensor.v1\x00"


class TracerInUseError(RepopsError):
    """A Tracer is already attached to an active reproducible mode (one mode at a time)."""


def is_structure_only(t: torch.Tensor) -> bool:
    """Whether ``t`` carries no values (meta device or FakeTensor)."""
    if t.is_meta:
        return True
    return type(t).__name__ == "FakeTensor" and type(t).__module__.startswith("torch._subclasses")


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
    h.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
    return h.digest()


@dataclass(frozen=True)
class TraceNode:
    """One traced op. ``args`` is ``{"args": [...], "kwargs": {...}}`` (plus ``"rng"`` for
    random ops) with tensors replaced by ``{"node": i, "out": j}`` / ``{"leaf": name}``."""

    index: int
    op: str
    args: dict[str, Any]
    output_digests: tuple[bytes | None, ...]
    output_meta: tuple[tuple[str, tuple[int, ...]], ...]

    def input_refs(self) -> list[RefKey]:
        """Every tensor this node reads, as hashable refs, in argument order."""
        return iter_refs(self.args)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (digests as hex, None for structure-only traces)."""
        return {
            "index": self.index,
            "op": self.op,
            "args": self.args,
            "output_digests": [None if d is None else d.hex() for d in self.output_digests],
            "output_meta": [[dt, list(shape)] for dt, shape in self.output_meta],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TraceNode:
        """Inverse of :meth:`to_json`; TraceEncodingError on a malformed record."""
        try:
            return cls(
                index=int(data["index"]),
                op=str(data["op"]),
                args=dict(data["args"]),
                output_digests=tuple(
                    None if d is None else bytes.fromhex(d) for d in data["output_digests"]
                ),
                output_meta=tuple(
                    (str(dt), tuple(int(s) for s in shape)) for dt, shape in data["output_meta"]
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TraceEncodingError(f"malformed trace node record: {exc}") from None

    def canonical_bytes(self) -> bytes:
        """Sorted-key compact JSON of :meth:`to_json`: the bytes verde hashes into a leaf."""
        return json.dumps(
            self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        ).encode("ascii")

    def structure(self) -> str:
        """The node without its values (op and argument tree), for real-vs-meta comparison."""
        body = {"index": self.index, "op": self.op, "args": self.args, "meta": self.output_meta}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class LeafRecord:
    """A named input tensor of the trace: registered by the caller or ``anon:<k>``."""

    name: str
    digest: bytes | None
    dtype: str
    shape: tuple[int, ...]


@dataclass
class _Entry:
    ref: dict[str, Any]
    key: RefKey
    version: int
    storage: StorageWeakRef = field(repr=False)


def _identity(t: torch.Tensor) -> tuple[tuple[Any, ...], torch.UntypedStorage]:
    storage = t.untyped_storage()
    ident = (storage._cdata, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
    return ident, storage


def _version(t: torch.Tensor) -> int:
    try:
        return int(t._version)
    except RuntimeError:  # inference tensors have no version counter
        return -1


class Tracer:
    """Records the ops of a ``repops.reproducible(tracer=...)`` block.

    ``digest_fn`` maps a tensor to bytes (default :func:`default_digest`). ``device_label``
    (e.g. ``"*"``) is recorded instead of every device argument. With
    ``keep_outputs=True`` the tracer also keeps a copy of every node output and leaf, keyed by
    ref (``("node", i, j)`` / ``("leaf", name)``), in :attr:`values` -- what a provider serves
    to an arbiter and what tests use to re-execute nodes.
    """

    def __init__(
        self,
        digest_fn: DigestFn | None = None,
        keep_outputs: bool = False,
        device_label: str | None = None,
    ) -> None:
        if digest_fn is not None and not callable(digest_fn):
            raise ValueError("digest_fn must be a callable Tensor -> bytes or None")
        if device_label is not None and (not isinstance(device_label, str) or not device_label):
            raise ValueError(f"device_label must be a non-empty string or None: {device_label!r}")
        #: Recorded in place of every device argument when set (e.g. "*"), so a meta-device
        #: replay and a CPU run give identical records.
        self.device_label = device_label
        self.digest_fn: DigestFn = digest_fn or default_digest
        self.keep_outputs = keep_outputs
        self.nodes: list[TraceNode] = []
        self.leaves: dict[str, LeafRecord] = {}
        self.values: dict[RefKey, torch.Tensor] = {}
        #: False once any op ran on a vendor kernel outside the exact list (strict=False).
        self.reproducible = True
        self.nonreproducible_ops: list[str] = []
        self._producers: dict[tuple[Any, ...], _Entry] = {}
        self._leaf_ids: dict[tuple[Any, ...], _Entry] = {}
        self._anon_count = 0
        # Outputs of the last op whose version is read at the next op: autograd's
        # ADInplaceOrView layer bumps an in-place op's version *after* the mode returns.
        # Weak references: a strong one would raise the tensor's use count, and autograd's
        # AccumulateGrad decides between stealing and cloning a gradient by its use count.
        self._pending: list[tuple[_Entry, weakref.ref[torch.Tensor]]] = []
        self._owner_lock = threading.Lock()
        self._owner: object | None = None

    # -- attachment to a mode ---------------------------------------------------------------
    def _attach(self, mode: object) -> None:
        with self._owner_lock:
            if self._owner is not None:
                raise TracerInUseError(
                    "this Tracer is already attached to an active repops.reproducible() block"
                )
            self._owner = mode

    def _detach(self, mode: object) -> None:
        self._settle()
        with self._owner_lock:
            if self._owner is mode:
                self._owner = None

    # -- leaves ------------------------------------------------------------------------------
    def register_leaves(self, named: Mapping[str, torch.Tensor]) -> None:
        """Name input tensors ("param:fc1.weight", "batch:x", ...) so refs to them are stable."""
        if not isinstance(named, Mapping):
            raise ValueError("register_leaves takes a mapping of name -> tensor")
        for name, t in named.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"leaf names must be non-empty strings, got {name!r}")
            if name.startswith("anon:"):
                raise ValueError(f"leaf name {name!r}: the 'anon:' prefix is reserved")
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"leaf {name!r} must be a tensor, got {type(t).__name__}")
            self._settle()
            if name in self.leaves:
                raise ValueError(f"leaf {name!r} is already registered")
            self._add_leaf(name, t)

    def _add_leaf(self, name: str, t: torch.Tensor) -> dict[str, Any]:
        structure_only = is_structure_only(t)
        digest = None
        if not structure_only:
            # register_leaves may be called inside the block: keep the digest's ops untraced.
            with _disable_current_modes():
                digest = self.digest_fn(t)
                if self.keep_outputs:
                    self.values[("leaf", name)] = t.detach().clone()
        self.leaves[name] = LeafRecord(name, digest, dtype_name(t.dtype), tuple(t.shape))
        ident, storage = _identity(t)
        ref = {"leaf": name}
        self._leaf_ids[ident] = _Entry(ref, ("leaf", name), _version(t), StorageWeakRef(storage))
        return ref

    def leaf_records(self) -> list[LeafRecord]:
        """All leaves (registered and anonymous) in the order they were first named."""
        return list(self.leaves.values())

    # -- references ----------------------------------------------------------------------------
    def _settle(self) -> None:
        """Read the final version of the previous op's outputs (see ``_pending``)."""
        for entry, out_ref in self._pending:
            out = out_ref()
            if out is not None:
                entry.version = _version(out)
        self._pending.clear()

    def ref(self, t: torch.Tensor) -> dict[str, Any]:
        """The reference for a tensor an op is about to read."""
        if self._pending:
            self._settle()
        ident, _ = _identity(t)
        version = _version(t)
        for table in (self._producers, self._leaf_ids):
            entry = table.get(ident)
            if entry is not None and entry.version == version and not entry.storage.expired():
                return entry.ref
        name = f"anon:{self._anon_count}"
        self._anon_count += 1
        return self._add_leaf(name, t)

    def encode_inputs(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Encode a call's arguments *before* it runs (in-place ops change versions)."""
        return encode_call(args, kwargs, self.ref, self.device_label)

    def record(
        self, op: str, tree: dict[str, Any], outputs: Iterable[torch.Tensor]
    ) -> TraceNode:
        """Append a node for ``op`` whose encoded inputs are ``tree`` and outputs ``outputs``."""
        self._settle()
        index = len(self.nodes)
        digests: list[bytes | None] = []
        meta: list[tuple[str, tuple[int, ...]]] = []
        for j, out in enumerate(outputs):
            structure_only = is_structure_only(out)
            digests.append(None if structure_only else self.digest_fn(out))
            meta.append((dtype_name(out.dtype), tuple(int(s) for s in out.shape)))
            ident, storage = _identity(out)
            ref = {"node": index, "out": j}
            entry = _Entry(ref, ("node", index, j), _version(out), StorageWeakRef(storage))
            self._producers[ident] = entry
            self._pending.append((entry, weakref.ref(out)))
            if self.keep_outputs and not structure_only:
                self.values[("node", index, j)] = out.detach().clone()
        node = TraceNode(index, op, tree, tuple(digests), tuple(meta))
        self.nodes.append(node)
        return node

    def mark_nonreproducible(self, op: str) -> None:
        """Note that ``op`` ran on a vendor kernel (strict=False): the run is not reproducible."""
        self.reproducible = False
        if op not in self.nonreproducible_ops:
            self.nonreproducible_ops.append(op)

    def structure(self) -> list[str]:
        """Every node's :meth:`TraceNode.structure`, for comparing a real and a meta trace."""
        return [n.structure() for n in self.nodes]
