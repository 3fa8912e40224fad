"""This process's uploaded datasets, keyed by sample root (see
``verde.protocol.jobs.uploaded_datasets``); bounded, least recently used evicted first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from verde.protocol.jobs.errors import DatasetError

DEFAULT_MAX_DATASETS = 16
DEFAULT_MAX_DATASET_BYTES = 4 << 30


class DatasetStore:
    """Bounded, thread-safe store of uploaded datasets keyed by sample root (hex)."""

    def __init__(self, max_datasets: int = DEFAULT_MAX_DATASETS,
                 max_bytes: int = DEFAULT_MAX_DATASET_BYTES) -> None:
        self._lock = threading.Lock()
        self._data: OrderedDict[str, Any] = OrderedDict()
        self.configure(max_datasets, max_bytes)

    def configure(self, max_datasets: int, max_bytes: int) -> None:
        """Change the bounds (a provider's command-line limits)."""
        for what, value in (("max_datasets", max_datasets), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be a positive int, got {value!r}")
        with self._lock:
            self.max_datasets, self.max_bytes = max_datasets, max_bytes

    def put(self, dataset: Any) -> str:
        """Keep ``dataset``; return its sample root (hex)."""
        size = _nbytes(dataset)
        if size > self.max_bytes:
            raise DatasetError(f"uploaded dataset holds {size} bytes, more than this process's "
                               f"limit of {self.max_bytes}")
        root = str(dataset.root.hex())
        with self._lock:
            self._data[root] = dataset
            self._data.move_to_end(root)
            while (len(self._data) > self.max_datasets
                   or sum(_nbytes(d) for d in self._data.values()) > self.max_bytes):
                self._data.popitem(last=False)
        return root

    def get(self, root: str) -> Any | None:
        with self._lock:
            found = self._data.get(root)
            if found is not None:
                self._data.move_to_end(root)
            return found

    def __contains__(self, root: object) -> bool:
        with self._lock:
            return root in self._data


def _nbytes(dataset: Any) -> int:
    return sum(int(a.nbytes) for a in dataset.fields.values())


_STORE = DatasetStore()


def uploaded_datasets() -> DatasetStore:
    """This process's store (a provider's uploads; read when a job's dataset has no file)."""
    return _STORE


