"""One uploaded state on a provider's disk: written as its bytes arrive, digested on the way.

Why: uploads are model parameters and datasets, gigabytes for real models; holding one whole
in memory while it arrives (and a second copy while it is decoded) is what limited uploads to
what RAM allows. Here the stream is written straight to a file and every tensor is digested as
its bytes pass (``proofs.digest_stream.TensorDigester``), so the state root is known when the
stream ends and memory stays at one chunk. The state is read back only when a job starts from
it (:meth:`UploadFile.load`), and the job's root check then runs on the tensors it will use.

File format: safetensors (an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and data offsets, padded with spaces to 8 bytes, then the raw
little-endian data in the header's order), so an operator can inspect an upload with standard
tools. Nothing is ever unpickled; this module reads a file back through the index it wrote,
never by parsing the header. A file is written as ``upload-*.part`` and renamed to
``upload-*.safetensors`` once complete; a stream that fails for any reason (too few or too
many bytes, a timeout, a cancelled call) removes its file before the error propagates.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from proofs.digest_stream import TensorDigester
from proofs.state import StateCommitment
from verde.protocol.peers.messages import WIRE_DTYPES
from verde.protocol.provider.errors import InvalidUpload, StateTooLarge, StoredUploadDamaged

#: Wire dtype name -> safetensors dtype code.
SAFETENSORS_DTYPES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16",
                      "int32": "I32", "int64": "I64", "float16": "F16", "bfloat16": "BF16",
                      "float32": "F32", "float64": "F64"}
PART_PREFIX, PART_SUFFIX, DONE_SUFFIX = "upload-", ".part", ".safetensors"
#: Errors of a full disk or quota: the provider cannot store an upload now (RESOURCE_EXHAUSTED).
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: The names ``write_upload`` makes (``tempfile.mkstemp``'s 8 random characters): a provider
#: clears only these from a directory it is given, never an operator's own files.
OWN_FILE = re.compile(re.escape(PART_PREFIX) + r"[a-z0-9_]{8}(?:" + re.escape(PART_SUFFIX)
                      + "|" + re.escape(DONE_SUFFIX) + ")")


@dataclass(frozen=True)
class UploadEntry:
    """One announced tensor of an upload: name, wire dtype name and shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidUpload(f"state entry names must be non-empty str, got {self.name!r}")
        if self.dtype not in WIRE_DTYPES:
            raise InvalidUpload(f"tensor {self.name!r}: unknown dtype {self.dtype!r}")
        if any(not isinstance(d, int) or d < 0 for d in self.shape):
            raise InvalidUpload(f"tensor {self.name!r}: bad shape {list(self.shape)}")

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * WIRE_DTYPES[self.dtype][1].itemsize


def entries_of(state: dict[str, torch.Tensor]) -> list[UploadEntry]:
    """The entries announcing ``state`` (contiguous CPU tensors of wire dtypes)."""
    names = {t: n for n, (t, _) in WIRE_DTYPES.items()}
    out = []
    for name, t in state.items():
        if t.dtype not in names:
            raise InvalidUpload(f"state entry {name!r}: dtype {t.dtype} cannot be uploaded")
        out.append(UploadEntry(name, names[t.dtype], tuple(t.shape)))
    return out


def tensor_bytes(state: dict[str, torch.Tensor]) -> Iterator[memoryview]:
    """The raw little-endian bytes of ``state``'s tensors, in order, without copying them."""
    for t in state.values():
        if t.numel():
            yield t.contiguous().view(-1).view(torch.uint8).numpy().data


@dataclass(frozen=True)
class UploadFile:
    """A complete upload on disk: where, what it holds, its state root and size in bytes."""

    path: Path
    entries: tuple[UploadEntry, ...]
    data_start: int
    root: str
    size: int

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def load(self, handle: io.BufferedReader | None = None) -> dict[str, torch.Tensor]:
        """The state, read into fresh memory from ``handle`` (default: the file opened anew);
        ``StoredUploadDamaged`` if the file shrank or cannot be read.

        Read, not memory-mapped: the job runs on these tensors and the caller's root check
        covers exactly them, so a later change of the file cannot reach the job.
        """
        try:
            if handle is not None:
                return self._read(handle)
            with open(self.path, "rb") as f:
                return self._read(f)
        except OSError as exc:
            raise StoredUploadDamaged(f"stored upload {self.root[:16]} cannot be read: "
                                      f"{exc}") from None

    def _read(self, f: io.BufferedReader) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        f.seek(self.data_start)
        for e in self.entries:
            buf = torch.empty(e.nbytes, dtype=torch.uint8)
            if e.nbytes and f.readinto(buf.numpy().data) != e.nbytes:
                raise StoredUploadDamaged(f"stored upload {self.root[:16]} is shorter than "
                                          f"its {e.name!r} entry")
            out[e.name] = buf.view(WIRE_DTYPES[e.dtype][0]).reshape(e.shape)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The entries as read-only numpy arrays mapped from the file (for datasets)."""
        out: dict[str, np.ndarray] = {}
        offset = self.data_start
        for e in self.entries:
            if e.dtype == "bfloat16":
                raise InvalidUpload(f"{e.name}: bfloat16 has no numpy dtype")
            dtype = WIRE_DTYPES[e.dtype][1]
            if e.nbytes:
                out[e.name] = np.memmap(self.path, dtype=dtype, mode="r", offset=offset,
                                        shape=e.shape)
            else:
                out[e.name] = np.zeros(e.shape, dtype=dtype)
            offset += e.nbytes
        return out

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


def safetensors_header(entries: Sequence[UploadEntry]) -> bytes:
    """Length prefix and JSON header of a safetensors file holding ``entries`` in order."""
    header: dict[str, object] = {}
    offset = 0
    for e in entries:
        header[e.name] = {"dtype": SAFETENSORS_DTYPES[e.dtype], "shape": list(e.shape),
                          "data_offsets": [offset, offset + e.nbytes]}
        offset += e.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text


def write_upload(directory: Path, entries: Sequence[UploadEntry],
                 data: Iterable[bytes | memoryview]) -> UploadFile:
    """Write ``data`` (the entries' bytes, in order, in pieces of any size) to a new file in
    ``directory``, digesting as it goes; the complete, renamed file and its root.

    ``InvalidUpload`` when the data is longer or shorter than the entries announce; on that or
    any other error (the stream failing under us) no file is left behind.
    """
    if not entries:
        raise InvalidUpload("state upload: no tensors announced")
    if len({e.name for e in entries}) != len(entries):
        raise InvalidUpload("state upload: a tensor appears twice")
    total = sum(e.nbytes for e in entries)
    header = safetensors_header(entries)
    try:
        fd, name = tempfile.mkstemp(prefix=PART_PREFIX, suffix=PART_SUFFIX, dir=directory)
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        raise StateTooLarge(f"state upload: the provider cannot store it now "
                            f"({exc.strerror or exc})") from None
    part = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            digests = _write_digested(f, entries, data, total)
        root = StateCommitment(digests).root.hex()
        done = part.with_suffix(DONE_SUFFIX)
        os.replace(part, done)
    except OSError as exc:
        part.unlink(missing_ok=True)
        if exc.errno in _DISK_FULL:  # the provider's disk, not the uploader's stream
            raise StateTooLarge(f"state upload: the provider cannot store it now "
                                f"({exc.strerror})") from None
        raise
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return UploadFile(done, tuple(entries), len(header), root, len(header) + total)


def _write_digested(f: BinaryIO, entries: Sequence[UploadEntry],
                    data: Iterable[bytes | memoryview], total: int) -> dict[str, bytes]:
    """Stream ``data`` into ``f`` entry by entry; the entries' tensor digests."""
    digests: dict[str, bytes] = {}
    pending = iter(entries)
    current: UploadEntry | None = None
    digester: TensorDigester | None = None
    written = 0

    def next_entry() -> None:
        nonlocal current, digester
        while True:  # empty tensors take no bytes: digest them as they come
            current = next(pending, None)
            if current is None:
                digester = None
                return
            digester = TensorDigester(current.dtype, current.shape)
            if current.nbytes:
                return
            digests[current.name] = digester.digest()

    next_entry()
    write = f.write
    for piece in data:
        view = memoryview(piece).cast("B")
        if written + len(view) > total:
            raise InvalidUpload("state upload stream carries more bytes than its headers "
                                "announce")
        write(view)
        written += len(view)
        while len(view) and current is not None and digester is not None:
            take = min(len(view), current.nbytes - digester.received)
            digester.update(view[:take])
            view = view[take:]
            if digester.received == current.nbytes:
                digests[current.name] = digester.digest()
                next_entry()
    if written != total:
        raise InvalidUpload(f"state upload stream truncated: {written} of {total} tensor "
                            "bytes")
    return digests
