"""The tracing hook: a record of every op a reproducible (or tracing) mode runs.

Each op becomes a :class:`repops.dispatch.trace_node.TraceNode`. verde commits to a Merkle tree
over the nodes of one training step; when two parties disagree, its arbiter re-executes the
first differing node with :func:`repops.execute_node` on inputs it obtains by reference.

Tensor identity: autograd unpacks saved tensors into fresh tensor objects that share the
original's storage and version counter, and views share their base's storage. A tensor is
therefore identified by (storage, storage offset, shape, strides, dtype) plus its version
counter: an in-place op bumps the version, so a stale entry is never matched, and a storage
weak reference makes sure a freed and re-used storage address is never mistaken for the old
one. A tensor that no traced op produced and no one registered is *unknown*: with
``unknown_tensors="anonymous"`` (default) it becomes a leaf ``anon:<k>`` with its digest
recorded, so nothing an op reads is untracked; with ``"refuse"`` reading it raises
:class:`UntracedTensorError` -- what a protocol needs when every input must be checkable
(a captured constant, or a value changed in place through another alias).

Kept values (``keep_outputs``): a tracer can keep the values of all or of chosen node outputs
and leaves, to serve them later (a provider answering an arbiter) or to re-execute nodes. It
keeps them copy-on-write: it holds the output's *storage* (not the tensor, whose use count
autograd inspects), and only when a traced op is about to write into that storage does it
snapshot the recorded view. :meth:`Tracer.value` checks a kept value against its recorded
digest, so a write the tracer did not see can never be served as the recorded value.

Structure-only tracing: on meta tensors or FakeTensors no values exist; digests are None and
everything else is recorded the same, so an arbiter can derive the expected graph itself.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import _disable_current_modes

from repops.dispatch.encoding import RefKey, dtype_name, encode, encode_call
from repops.dispatch.trace_node import DigestFn, LeafRecord, TraceNode, default_digest
from repops.errors import RepopsError

_UNKNOWN_POLICIES = ("anonymous", "refuse")
_SCALAR_POLICIES = ("record", "refuse")


class TracerInUseError(RepopsError):
    """A Tracer is already attached to an active mode (one mode at a time)."""


class UntracedTensorError(RepopsError):
    """An op read a tensor that is neither a registered leaf nor a traced op's current output
    (with ``unknown_tensors="refuse"``)."""


class ScalarResultError(RepopsError):
    """An op returned a Python value instead of tensors (with ``scalar_results="refuse"``)."""


class KeptValueChanged(RepopsError):
    """A kept value no longer has its recorded digest: it was written outside the trace."""


def is_structure_only(t: torch.Tensor) -> bool:
    """Whether ``t`` carries no values (meta device or FakeTensor)."""
    if t.is_meta:
        return True
    return type(t).__name__ == "FakeTensor" and type(t).__module__.startswith("torch._subclasses")


@dataclass
class _Entry:
    ref: dict[str, Any]
    key: RefKey
    version: int
    storage: StorageWeakRef = field(repr=False)


@dataclass
class _Kept:
    """A kept value: the recorded view of a storage the tracer holds, or its snapshot."""

    storage: torch.UntypedStorage | None
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    digest: bytes | None
    snapshot: torch.Tensor | None = None

    def view(self) -> torch.Tensor:
        if self.snapshot is not None:
            return self.snapshot
        assert self.storage is not None  # a kept value without a snapshot holds its storage
        with _disable_current_modes():
            empty = torch.empty(0, dtype=self.dtype, device=self.storage.device)
            return empty.set_(self.storage, self.offset, self.shape, self.stride)

    def take_snapshot(self) -> None:
        if self.snapshot is None:
            with _disable_current_modes():
                self.snapshot = self.view().clone()
            self.storage = None


def _identity(t: torch.Tensor) -> tuple[tuple[Any, ...], torch.UntypedStorage]:
    storage = t.untyped_storage()
    ident = (storage._cdata, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
    return ident, storage


def _version(t: torch.Tensor) -> int:
    try:
        return int(t._version)
    except RuntimeError:  # inference tensors have no version counter
        return -1


def written_tensors(
    func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> list[torch.Tensor]:
    """The tensors an op writes into (in-place self, ``out=`` arguments), from its schema."""
    written: list[torch.Tensor] = []
    for i, arg in enumerate(func._schema.arguments):
        info = arg.alias_info
        if info is None or not info.is_write:
            continue
        value = args[i] if i < len(args) else kwargs.get(arg.name)
        stack = [value]
        while stack:
            v = stack.pop()
            if isinstance(v, torch.Tensor):
                written.append(v)
            elif isinstance(v, list | tuple):
                stack.extend(v)
    return written


class KeptValues(Mapping[RefKey, torch.Tensor]):
    """Read-only mapping ref -> kept value (see :meth:`Tracer.value`); do not write into them."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def __getitem__(self, key: RefKey) -> torch.Tensor:
        return self._tracer.value(key)

    def __iter__(self) -> Iterator[RefKey]:
        return iter(list(self._tracer._kept))

    def __len__(self) -> int:
        return len(self._tracer._kept)


class Tracer:
    """Records the ops of a ``repops.reproducible(tracer=...)`` or ``repops.tracing(...)`` block.

    ``digest_fn`` maps a tensor to bytes (default :func:`default_digest`). ``device_label``
    (e.g. ``"*"``) is recorded instead of every device argument, so a meta-device replay and a
    CPU run give identical records. ``keep_outputs``: ``False`` (keep nothing), ``True`` (every
    node output and leaf) or a collection of refs to keep (``("node", i, j)`` /
    ``("leaf", name)``); read them with :meth:`value` or :attr:`values`.
    ``unknown_tensors``: ``"anonymous"`` or ``"refuse"``; ``scalar_results``: ``"record"`` or
    ``"refuse"`` (see the module docstring).
    """

    def __init__(
        self,
        digest_fn: DigestFn | None = None,
        keep_outputs: bool | Collection[RefKey] = False,
        device_label: str | None = None,
        *,
        unknown_tensors: str = "anonymous",
        scalar_results: str = "record",
    ) -> None:
        if digest_fn is not None and not callable(digest_fn):
            raise ValueError("digest_fn must be a callable Tensor -> bytes or None")
        if device_label is not None and (not isinstance(device_label, str) or not device_label):
            raise ValueError(f"device_label must be a non-empty string or None: {device_label!r}")
        if unknown_tensors not in _UNKNOWN_POLICIES:
            raise ValueError(f"unknown_tensors must be one of {_UNKNOWN_POLICIES}, "
                             f"got {unknown_tensors!r}")
        if scalar_results not in _SCALAR_POLICIES:
            raise ValueError(f"scalar_results must be one of {_SCALAR_POLICIES}, "
                             f"got {scalar_results!r}")
        if not isinstance(keep_outputs, bool):
            if isinstance(keep_outputs, str) or not isinstance(keep_outputs, Collection):
                raise ValueError("keep_outputs must be a bool or a collection of refs")
            keep_outputs = frozenset(tuple(k) for k in keep_outputs)
        self.device_label = device_label
        self.digest_fn: DigestFn = digest_fn or default_digest
        self.keep_outputs = keep_outputs
        self.unknown_tensors = unknown_tensors
        self.scalar_results = scalar_results
        self.nodes: list[TraceNode] = []
        self.leaves: dict[str, LeafRecord] = {}
        #: False once any op ran on a vendor kernel outside the exact list (strict=False).
        self.reproducible = True
        self.nonreproducible_ops: list[str] = []
        self._producers: dict[tuple[Any, ...], _Entry] = {}
        self._leaf_ids: dict[tuple[Any, ...], _Entry] = {}
        self._anon_count = 0
        self._kept: dict[RefKey, _Kept] = {}
        self._kept_by_storage: dict[int, list[RefKey]] = {}
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
                    "this Tracer is already attached to an active repops mode"
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
        digest = None
        if not is_structure_only(t):
            # register_leaves may be called inside the block: keep the digest's ops untraced.
            with _disable_current_modes():
                digest = self.digest_fn(t)
        key: RefKey = ("leaf", name)
        self.leaves[name] = LeafRecord(name, digest, dtype_name(t.dtype), tuple(t.shape))
        ident, storage = _identity(t)
        ref = {"leaf": name}
        self._leaf_ids[ident] = _Entry(ref, key, _version(t), StorageWeakRef(storage))
        self._keep(key, t, digest)
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
        """The reference for a tensor an op is about to read (see ``unknown_tensors``)."""
        if self._pending:
            self._settle()
        ident, _ = _identity(t)
        version = _version(t)
        for table in (self._producers, self._leaf_ids):
            entry = table.get(ident)
            if entry is not None and entry.version == version and not entry.storage.expired():
                return entry.ref
        if self.unknown_tensors == "refuse":
            raise UntracedTensorError(
                f"an op read a {dtype_name(t.dtype)} tensor of shape {list(t.shape)} that is "
                "neither a registered input nor the current value of a traced op's output: a "
                "tensor captured from outside the traced code, or one changed in place through "
                "another view of it; create such tensors inside the traced code, and avoid "
                "in-place ops on views"
            )
        name = f"anon:{self._anon_count}"
        self._anon_count += 1
        return self._add_leaf(name, t)

    def begin(
        self, func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Before an op runs: encode its arguments (in-place ops change versions) and snapshot
        every kept value that the op is about to overwrite."""
        tree = encode_call(args, kwargs, self.ref, self.device_label)
        if self._kept_by_storage:
            for t in written_tensors(func, args, kwargs):
                if is_structure_only(t):
                    continue
                for key in self._kept_by_storage.pop(t.untyped_storage()._cdata, ()):
                    self._kept[key].take_snapshot()
        return tree

    def encode_inputs(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Encode a call's arguments without running the write bookkeeping of :meth:`begin`."""
        return encode_call(args, kwargs, self.ref, self.device_label)

    def record(
        self, op: str, tree: dict[str, Any], outputs: list[torch.Tensor], scalar: Any = None
    ) -> TraceNode:
        """Append a node for ``op`` whose encoded inputs are ``tree``, tensor outputs
        ``outputs`` and, for ops that return a Python value, ``scalar``."""
        self._settle()
        index = len(self.nodes)
        encoded_scalar = None
        if scalar is not None:
            if self.scalar_results == "refuse":
                raise ScalarResultError(
                    f"{op} returned a Python {type(scalar).__name__} (as .item() does): code "
                    "whose control flow may depend on tensor values cannot be traced"
                )
            encoded_scalar = encode(scalar, self.ref)
        digests: list[bytes | None] = []
        meta: list[tuple[str, tuple[int, ...]]] = []
        for j, out in enumerate(outputs):
            structure_only = is_structure_only(out)
            digest = None
            if not structure_only:
                with _disable_current_modes():
                    digest = self.digest_fn(out)
            digests.append(digest)
            meta.append((dtype_name(out.dtype), tuple(int(s) for s in out.shape)))
            ident, storage = _identity(out)
            key: RefKey = ("node", index, j)
            entry = _Entry({"node": index, "out": j}, key, _version(out), StorageWeakRef(storage))
            self._producers[ident] = entry
            self._pending.append((entry, weakref.ref(out)))
            self._keep(key, out, digest)
        node = TraceNode(index, op, tree, tuple(digests), tuple(meta), encoded_scalar)
        self.nodes.append(node)
        return node

    # -- kept values ---------------------------------------------------------------------------
    def _wants(self, key: RefKey) -> bool:
        keep = self.keep_outputs
        return keep if isinstance(keep, bool) else key in keep

    def _keep(self, key: RefKey, t: torch.Tensor, digest: bytes | None) -> None:
        if digest is None or not self._wants(key):
            return
        storage = t.untyped_storage()
        self._kept[key] = _Kept(storage, int(t.storage_offset()), tuple(t.shape),
                                tuple(t.stride()), t.dtype, digest)
        self._kept_by_storage.setdefault(storage._cdata, []).append(key)

    def value(self, key: RefKey) -> torch.Tensor:
        """The kept value of ``key`` as it was recorded (checked against its digest).

        Raises ``KeyError`` for a ref that was not kept and :class:`KeptValueChanged` if the
        value was written by something the tracer did not see. Treat the result as read-only.
        """
        kept = self._kept[tuple(key)]
        value = kept.view()
        with _disable_current_modes():
            if self.digest_fn(value) != kept.digest:
                raise KeptValueChanged(
                    f"the kept value of {tuple(key)} changed after it was recorded (written "
                    "outside the traced ops)"
                )
        return value

    @property
    def values(self) -> KeptValues:
        """Every kept value, by ref (see :meth:`value`)."""
        return KeptValues(self)

    # -- run-level facts ---------------------------------------------------------------------
    def mark_nonreproducible(self, op: str) -> None:
        """Note that ``op`` ran on a vendor kernel (strict=False): the run is not reproducible."""
        self.reproducible = False
        if op not in self.nonreproducible_ops:
            self.nonreproducible_ops.append(op)

    def structure(self) -> list[dict[str, Any]]:
        """Every node's :meth:`TraceNode.structure`, for comparing a real and a meta trace."""
        return [n.structure() for n in self.nodes]
