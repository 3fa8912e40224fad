"""Datasets that travel: uploaded by the client, held by a provider under their sample root.

Why keyed by the sample root: a job names its file dataset by the Merkle root over its samples
(``verde.protocol.jobs.datasets``), not by a path, so the client's file and a provider's copy
meet at that root and nothing else needs trusting -- whoever uploads, a job reads exactly the
samples its spec commits to. A job spec that carries no ``location`` describes the dataset by
``n_samples`` and ``fields`` (each field's dtype and per-sample shape), which is all an arbiter
or an offline verifier needs: they never read samples except with inclusion proofs.

An upload travels as an ordinary state upload (``Provider.put_state``) whose entries are all
``dataset/<field>`` (the whole array of that field); the provider recognises it, computes its
sample root and keeps it in this process's :class:`DatasetStore` (bounded like the state
store: least recently used evicted first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from verde.protocol.jobs.datasets import Dataset
from verde.protocol.jobs.errors import DatasetError

#: Prefix of the state entries of a dataset upload (one entry per field).
DATASET_PREFIX = "dataset/"
DEFAULT_MAX_DATASETS = 16
DEFAULT_MAX_DATASET_BYTES = 4 << 30


def dataset_upload(dataset: Dataset) -> dict[str, torch.Tensor]:
    """The state to upload for ``dataset``: ``dataset/<field>`` -> the field's whole array."""
    return {DATASET_PREFIX + name: torch.from_numpy(np.ascontiguousarray(a))
            for name, a in dataset.fields.items()}


def is_dataset_upload(state: Mapping[str, Any]) -> bool:
    """Whether an uploaded state is a dataset (every entry ``dataset/<field>``)."""
    return bool(state) and all(isinstance(n, str) and n.startswith(DATASET_PREFIX)
                               and len(n) > len(DATASET_PREFIX) for n in state)


def dataset_from_upload(state: Mapping[str, torch.Tensor]) -> Dataset:
    """The dataset an upload holds (fields as numpy arrays, copied)."""
    return Dataset({name[len(DATASET_PREFIX):]: t.detach().cpu().numpy().copy()
                    for name, t in state.items()})


class DatasetStore:
    """Bounded, thread-safe store of uploaded datasets keyed by sample root (hex)."""

    def __init__(self, max_datasets: int = DEFAULT_MAX_DATASETS,
                 max_bytes: int = DEFAULT_MAX_DATASET_BYTES) -> None:
        self._lock = threading.Lock()
        self._data: OrderedDict[str, Dataset] = OrderedDict()
        self.configure(max_datasets, max_bytes)

    def configure(self, max_datasets: int, max_bytes: int) -> None:
        """Change the bounds (a provider's command-line limits)."""
        for what, value in (("max_datasets", max_datasets), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be a positive int, got {value!r}")
        with self._lock:
            self.max_datasets, self.max_bytes = max_datasets, max_bytes

    def put(self, dataset: Dataset) -> str:
        """Keep ``dataset``; return its sample root (hex)."""
        size = _nbytes(dataset)
        if size > self.max_bytes:
            raise DatasetError(f"uploaded dataset holds {size} bytes, more than this process's "
                               f"limit of {self.max_bytes}")
        root = dataset.root.hex()
        with self._lock:
            self._data[root] = dataset
            self._data.move_to_end(root)
            while (len(self._data) > self.max_datasets
                   or sum(_nbytes(d) for d in self._data.values()) > self.max_bytes):
                self._data.popitem(last=False)
        return root

    def get(self, root: str) -> Dataset | None:
        with self._lock:
            found = self._data.get(root)
            if found is not None:
                self._data.move_to_end(root)
            return found

    def __contains__(self, root: object) -> bool:
        with self._lock:
            return root in self._data


def _nbytes(dataset: Dataset) -> int:
    return sum(int(a.nbytes) for a in dataset.fields.values())


_STORE = DatasetStore()


def uploaded_datasets() -> DatasetStore:
    """This process's store (a provider's uploads; read when a job's dataset has no file)."""
    return _STORE


def put_dataset_upload(state: Mapping[str, torch.Tensor]) -> str:
    """Keep an uploaded dataset (``is_dataset_upload``) in this process; its sample root."""
    return _STORE.put(dataset_from_upload(state))


class DeclaredDataset(Dataset):
    """A dataset known by its spec (root, sample count, field shapes) whose samples come from
    this process's uploads on first use; a process that never reads samples (an arbiter, a
    verifier) never needs them."""

    def __init__(self, root: str, n_samples: int,
                 shapes: Mapping[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
        self._declared_root = root
        self._declared_n = n_samples
        self._shapes = dict(shapes)
        self._resolved: Dataset | None = None

    def _data(self) -> Dataset:
        if self._resolved is None:
            found = _STORE.get(self._declared_root)
            if found is None:
                raise DatasetError(
                    f"dataset {self._declared_root}: its samples are not on this machine; "
                    "upload them first (verde delegate uploads the files a job names)")
            if found.n_samples != self._declared_n or found.sample_shapes() != self._shapes:
                raise DatasetError(
                    f"dataset {self._declared_root}: the uploaded samples "
                    f"({found.n_samples}, {_describe(found.sample_shapes())}) differ from the "
                    f"job's description ({self._declared_n}, {_describe(self._shapes)})")
            self._resolved = found
        return self._resolved

    @property
    def fields(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return self._data().fields

    @property
    def n_samples(self) -> int:
        return self._declared_n

    def sample(self, index: int) -> dict[str, np.ndarray]:
        return self._data().sample(index)

    @property
    def tree(self) -> Any:
        return self._data().tree

    @property
    def root(self) -> bytes:
        return bytes.fromhex(self._declared_root)

    def proof(self, index: int) -> Any:
        return self._data().proof(index)

    def sample_shapes(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return dict(self._shapes)


def _describe(shapes: Mapping[str, tuple[tuple[int, ...], torch.dtype]]) -> str:
    return ", ".join(f"{k}: {str(d).removeprefix('torch.')} {list(s)}"
                     for k, (s, d) in sorted(shapes.items()))
