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

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from verde.protocol.jobs.dataset_store import (
    DEFAULT_MAX_DATASET_BYTES,
    DEFAULT_MAX_DATASETS,
    DatasetStore,
    uploaded_datasets,
)
from verde.protocol.jobs.datasets import Dataset, DeclaredDataset

__all__ = [
    "DATASET_PREFIX",
    "DEFAULT_MAX_DATASETS",
    "DEFAULT_MAX_DATASET_BYTES",
    "DatasetStore",
    "DeclaredDataset",
    "dataset_from_upload",
    "dataset_upload",
    "is_dataset_upload",
    "put_dataset_arrays",
    "put_dataset_upload",
    "uploaded_datasets",
]

#: Prefix of the state entries of a dataset upload (one entry per field).
DATASET_PREFIX = "dataset/"


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


def put_dataset_upload(state: Mapping[str, torch.Tensor]) -> str:
    """Keep an uploaded dataset (``is_dataset_upload``) in this process; its sample root."""
    return uploaded_datasets().put(dataset_from_upload(state))


def put_dataset_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """Keep an uploaded dataset given as its ``dataset/<field>`` arrays, as they are (a
    provider passes arrays mapped from the upload's file, so the samples stay on disk)."""
    return uploaded_datasets().put(Dataset({name[len(DATASET_PREFIX):]: a
                                            for name, a in arrays.items()}))
