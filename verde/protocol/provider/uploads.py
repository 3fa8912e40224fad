"""Uploaded states a provider holds until a job starts from them, keyed by their state root,
kept as files on the provider's disk.

Why keyed by root: a job that starts from an explicit state 0 names it only by its
``proofs.state.StateCommitment`` root (``JobSpec.init``), so the upload and the job meet at
that root and nothing else needs to be trusted: whoever uploads, the job runs on exactly the
state its spec commits to.

Why on disk: uploads are real models' parameters and datasets, gigabytes each; an upload is
streamed into a file as it arrives (``verde.protocol.provider.upload_file``), never held whole
in memory, and read back only when a job starts from it.

Why bounded: uploads come from other parties before any job exists, so the store keeps at
most ``max_states`` states (default 64) and ``max_bytes`` bytes of files (default 4 GiB: a
real model's parameters and a dataset beside them), evicting the least recently put or used
first and deleting its file. A state larger than ``max_bytes`` on its own is refused with
``StateTooLarge`` before anything is written. Evictions happen only once a new upload is
complete, so a bad or refused upload loses nothing else (while uploads are in flight the
directory may briefly hold their partial files beside ``max_bytes``). Once a job is accepted,
the provider pins its state outside this store (``Provider.accept``), so an eviction cannot
strand an accepted job.

Where: ``directory`` (``verde provider serve --upload-dir``), which the store cleans of
leftover ``upload-*`` files when it opens and of its own files when it closes; one provider
per directory. Without one, a private temporary directory is made on the first upload and
removed on :meth:`StateStore.close` (or when the store is garbage-collected).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch

from verde.protocol.provider.errors import InvalidUpload, StateTooLarge, StoredUploadDamaged
from verde.protocol.provider.upload_file import (
    OWN_FILE,
    UploadEntry,
    UploadFile,
    entries_of,
    safetensors_header,
    tensor_bytes,
    write_upload,
)

DEFAULT_MAX_STATES = 64
DEFAULT_MAX_BYTES = 4 << 30


def copy_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of ``state``; refuses anything but ``str -> Tensor``."""
    if not isinstance(state, Mapping):
        raise InvalidUpload(
            f"state must be a mapping of name -> tensor, got {type(state).__name__}")
    if not state:
        raise InvalidUpload("state is empty: a job state has at least one entry")
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if not isinstance(name, str) or not name:
            raise InvalidUpload(f"state entry names must be non-empty str, got {name!r}")
        if not isinstance(t, torch.Tensor):
            raise InvalidUpload(f"state entry {name!r}: expected a torch.Tensor, "
                             f"got {type(t).__name__}")
        out[name] = t.detach().to("cpu", copy=True).contiguous()
    return out


class StateStore:
    """Bounded, thread-safe store of uploaded states on disk (see the module docstring)."""

    def __init__(self, max_states: int = DEFAULT_MAX_STATES,
                 max_bytes: int = DEFAULT_MAX_BYTES, directory: Path | None = None) -> None:
        if not isinstance(max_states, int) or max_states < 1:
            raise ValueError(f"max_states must be a positive int, got {max_states!r}")
        if not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        self.max_states = max_states
        self.max_bytes = max_bytes
        self._given = Path(directory) if directory is not None else None
        self._directory: Path | None = None
        self._files: OrderedDict[str, UploadFile] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        if self._given is not None:
            self._open_given(self._given)

    def _open_given(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            for leftover in directory.iterdir():
                if OWN_FILE.fullmatch(leftover.name):  # only names write_upload makes
                    leftover.unlink(missing_ok=True)
        except OSError as exc:
            raise ValueError(f"upload directory {directory}: {exc}") from None
        self._directory = directory

    @property
    def directory(self) -> Path:
        """Where uploads are written (a private temporary directory is made on first use)."""
        with self._lock:
            if self._directory is None:
                made = Path(tempfile.mkdtemp(prefix="verde-uploads-"))
                weakref.finalize(self, shutil.rmtree, made, ignore_errors=True)
                self._directory = made
            return self._directory

    def receive(self, entries: Sequence[UploadEntry],
                data: Iterable[bytes | memoryview]) -> UploadFile:
        """Write an upload's stream to a file (not yet kept: see :meth:`keep`).

        ``StateTooLarge`` before anything is written when the file would exceed ``max_bytes``;
        ``InvalidUpload`` for a stream that does not match ``entries``. No file is left behind
        on any error.
        """
        size = len(safetensors_header(entries)) + sum(e.nbytes for e in entries)
        if size > self.max_bytes:
            raise StateTooLarge(f"uploaded state needs {size} bytes on disk, more than this "
                                f"provider's limit of {self.max_bytes}")
        return write_upload(self.directory, entries, data)

    def keep(self, upload: UploadFile) -> str:
        """Keep a received upload under its root, evicting the least recently used; its root."""
        evicted: list[UploadFile] = []
        with self._lock:
            previous = self._files.pop(upload.root, None)
            if previous is not None:  # the same state again: the new file was just digested
                self._bytes -= previous.size
                evicted.append(previous)
            self._files[upload.root] = upload
            self._bytes += upload.size
            while len(self._files) > self.max_states or self._bytes > self.max_bytes:
                _, old = self._files.popitem(last=False)
                self._bytes -= old.size
                evicted.append(old)
        for old in evicted:
            old.delete()
        return upload.root

    def put(self, state: Mapping[str, torch.Tensor]) -> str:
        """Store ``state`` (an in-process upload); return its root (lowercase hex)."""
        copy = copy_state(state)
        return self.keep(self.receive(entries_of(copy), tensor_bytes(copy)))

    def get(self, root: str) -> dict[str, torch.Tensor] | None:
        """The state stored under ``root``, read from its file, or None."""
        with self._lock:
            upload = self._files.get(root)
            if upload is None:
                return None
            self._files.move_to_end(root)
            # Open under the lock: an eviction that deletes the file after this still leaves
            # the open file readable.
            try:
                handle = open(upload.path, "rb")  # noqa: SIM115 -- closed below
            except OSError as exc:  # removed or unreadable under us: forget it, say so
                del self._files[root]
                self._bytes -= upload.size
                raise StoredUploadDamaged(f"stored upload {root[:16]} cannot be read "
                                          f"({exc.strerror or exc}): upload it again") from None
        with handle:
            return upload.load(handle)

    def file(self, root: str) -> UploadFile | None:
        """Where the state stored under ``root`` is (for inspection and tests), or None."""
        with self._lock:
            return self._files.get(root)

    def close(self) -> None:
        """Delete every stored file (and the directory, if this store made it)."""
        with self._lock:
            files = list(self._files.values())
            self._files.clear()
            self._bytes = 0
            made = self._directory if self._given is None else None
            self._directory = self._directory if self._given is not None else None
        for upload in files:
            upload.delete()
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)

    def __contains__(self, root: object) -> bool:
        with self._lock:
            return root in self._files

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored files on disk."""
        with self._lock:
            return self._bytes
