"""Datasets committed as a Merkle tree over samples, so a single sample can be proven.

Why: in a Verde dispute (Arun et al. 2025) the operator the arbiter recomputes may read the
step's batch. The arbiter does not hold the data; it asks a provider for the samples of that
batch and checks each one against the dataset root named in the job spec. Leaf ``i`` binds the
canonical digests (``proofs.tensor_digest``) of every field of sample ``i``::

    b"verde/sample/v1\\x00" || canonical_json({field: digest hex})

Sources: scikit-learn's bundled digits (no download), generated token streams (a seeded
Markov chain, so a GPT has something learnable), and user files in safetensors or npz
(``np.load(allow_pickle=False)``: files from other parties are never unpickled).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from proofs import canonical_json
from proofs.digest import tensor_digest
from proofs.merkle import InclusionProof, MerkleTree, verify_inclusion
from verde.protocol.jobs.dataset_store import uploaded_datasets
from verde.protocol.jobs.errors import DatasetError, JobSpecError

SAMPLE_DOMAIN = b"verde/sample/v1\x00"
_TOKEN_DEFAULTS = {"n_sequences": 256, "seq_len": 32, "vocab": 64, "seed": 0}
_MAX_TOKEN_ELEMENTS = 50_000_000


def sample_leaf(fields: Mapping[str, Any]) -> bytes:
    """Leaf data committing one sample (a mapping field -> array/tensor)."""
    return SAMPLE_DOMAIN + canonical_json({k: tensor_digest(v).hex() for k, v in fields.items()})


def verify_sample(
    root: bytes, n_samples: int, index: int, fields: Mapping[str, Any], proof: InclusionProof
) -> None:
    """Raise ``proofs.errors.InvalidProof`` unless ``fields`` is sample ``index`` under ``root``."""
    verify_inclusion(root, sample_leaf(fields), index, n_samples, proof)


@dataclass
class Dataset:
    """Samples as named arrays sharing the first axis; committed lazily by a Merkle tree."""

    fields: dict[str, np.ndarray]
    _tree: MerkleTree | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.fields:
            raise DatasetError("dataset has no fields")
        sizes = {name: a.shape[0] if a.ndim else -1 for name, a in self.fields.items()}
        if len(set(sizes.values())) != 1 or -1 in sizes.values():
            raise DatasetError(f"dataset fields must share their first axis, got {sizes}")
        if next(iter(sizes.values())) == 0:
            raise DatasetError("dataset is empty")

    @property
    def n_samples(self) -> int:
        return int(next(iter(self.fields.values())).shape[0])

    def sample(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < self.n_samples:
            raise IndexError(f"sample index {index} outside [0, {self.n_samples})")
        return {name: np.array(a[index], copy=True, order="C") for name, a in self.fields.items()}

    @property
    def tree(self) -> MerkleTree:
        if self._tree is None:
            self._tree = MerkleTree([sample_leaf(self.sample(i)) for i in range(self.n_samples)])
        return self._tree

    @property
    def root(self) -> bytes:
        return self.tree.root

    def proof(self, index: int) -> InclusionProof:
        return self.tree.proof(index)

    def sample_shapes(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Per-field (shape of one sample, torch dtype)."""
        return {
            name: (tuple(a.shape[1:]), torch.from_numpy(a[:1].copy()).dtype)
            for name, a in self.fields.items()
        }

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stack the samples at ``indices`` into one tensor per field (``batch/<field>``)."""
        return assemble_batch([self.sample(int(i)) for i in indices])


def assemble_batch(samples: Sequence[Mapping[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack samples (exact copies, no arithmetic) into batch tensors keyed by field."""
    names = list(samples[0])
    return {name: torch.from_numpy(np.stack([s[name] for s in samples])) for name in names}


def normalize_dataset_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Validate a dataset table of a job spec and fill defaults."""
    name = spec.get("name")
    if name == "digits":
        _no_extra(spec, {"name"})
        return {"name": "digits"}
    if name == "tokens":
        _no_extra(spec, {"name", *_TOKEN_DEFAULTS})
        out: dict[str, Any] = {"name": "tokens"}
        for key, default in _TOKEN_DEFAULTS.items():
            value = spec.get(key, default)
            lowest = 0 if key == "seed" else 2
            if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
                raise JobSpecError(f"dataset tokens: {key} must be an integer >= {lowest}")
            out[key] = value
        if out["n_sequences"] * (out["seq_len"] + 1) > _MAX_TOKEN_ELEMENTS:
            raise JobSpecError("dataset tokens: n_sequences * (seq_len + 1) is too large")
        return out
    if name == "file":
        return _normalize_file_spec(spec)
    raise JobSpecError(f"dataset: name must be 'digits', 'tokens' or 'file', got {name!r}")


def _normalize_file_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A user file: ``root`` always; ``location`` (where this machine finds it) and/or its
    description ``n_samples`` + ``fields`` (what a machine without the file needs)."""
    _no_extra(spec, {"name", "location", "root", "n_samples", "fields"})
    location, root = spec.get("location"), spec.get("root")
    if not isinstance(root, str) or len(root) != 64 or not _is_hex(root):
        raise JobSpecError(
            "dataset file: 'root' must be the 64-hex-digit sample Merkle root "
            "(`verde data root FILE` prints it)"
        )
    out: dict[str, Any] = {"name": "file", "root": root}
    described = "n_samples" in spec or "fields" in spec
    if described:
        out.update(_description(spec))
    if location is None and not described:
        raise JobSpecError("dataset file: give 'location' (path of a .npz/.safetensors) or the "
                           "dataset's description 'n_samples' and 'fields' (verde delegate "
                           "fills them in and uploads the samples)")
    if location is not None:
        if not isinstance(location, str) or not location:
            raise JobSpecError("dataset file: 'location' must be a non-empty path")
        if not described and not Path(location).is_file():
            raise JobSpecError(f"dataset file: {location} does not exist")
        out["location"] = location
    return out


#: dtypes a dataset field may have (names as torch spells them without the prefix).
FIELD_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
                "uint8", "bool")


def _description(spec: Mapping[str, Any]) -> dict[str, Any]:
    n, fields = spec.get("n_samples"), spec.get("fields")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise JobSpecError(f"dataset file: n_samples must be a positive integer, got {n!r}")
    if not isinstance(fields, Mapping) or not fields:
        raise JobSpecError("dataset file: fields must be a table field -> {dtype, shape}")
    out = {}
    for key, entry in fields.items():
        ok = (isinstance(key, str) and key and isinstance(entry, Mapping)
              and set(entry) == {"dtype", "shape"} and entry["dtype"] in FIELD_DTYPES
              and isinstance(entry["shape"], list | tuple)
              and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                      for d in entry["shape"]))
        if not ok:
            raise JobSpecError(f"dataset file: field {key!r} must be {{dtype, shape}} with dtype "
                               f"one of {FIELD_DTYPES} and shape a list of sizes, got {entry!r}")
        out[key] = {"dtype": entry["dtype"], "shape": list(entry["shape"])}
    return {"n_samples": n, "fields": out}


def describe_dataset(dataset: Dataset) -> dict[str, Any]:
    """``n_samples`` and ``fields`` of a dataset, as a job spec describes a file dataset."""
    return {"n_samples": dataset.n_samples,
            "fields": {k: {"dtype": str(dtype).removeprefix("torch."), "shape": list(shape)}
                       for k, (shape, dtype) in dataset.sample_shapes().items()}}


def _declared_shapes(spec: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {k: (tuple(v["shape"]), getattr(torch, v["dtype"]))
            for k, v in spec["fields"].items()}


def _no_extra(spec: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(spec) - allowed)
    if extra:
        raise JobSpecError(f"dataset {spec.get('name')}: unknown field(s) {extra}")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def load_dataset(spec: Mapping[str, Any]) -> Dataset:
    """The dataset a normalized dataset spec names (cached per spec in this process)."""
    key = canonical_json(dict(spec)).decode()
    return _load_cached(key)


@functools.lru_cache(maxsize=8)
def _load_cached(key: str) -> Dataset:
    import json

    spec = json.loads(key)
    if spec["name"] == "digits":
        return digits_dataset()
    if spec["name"] == "tokens":
        return token_dataset(spec["n_sequences"], spec["seq_len"], spec["vocab"], spec["seed"])
    location = spec.get("location")
    if location is None or (not Path(location).is_file() and "fields" in spec):
        # No file here: the samples come from this process's uploads, when they are needed.
        return DeclaredDataset(spec["root"], spec["n_samples"], _declared_shapes(spec))
    dataset = read_dataset_file(location)
    if dataset.root.hex() != spec["root"]:
        raise DatasetError(
            f"dataset file {location}: its sample root {dataset.root.hex()} does not "
            f"match the job's root {spec['root']}"
        )
    if "fields" in spec and describe_dataset(dataset) != {
            "n_samples": spec["n_samples"], "fields": spec["fields"]}:
        raise DatasetError(f"dataset file {location}: its samples differ from the job's "
                           "description (n_samples, fields)")
    return dataset


def digits_dataset() -> Dataset:
    """scikit-learn's 8x8 digits (1797 samples, bundled): x float32 [64] in [0, 1], y int64."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / np.float32(16.0)).astype(np.float32)
    return Dataset({"x": x, "y": bunch.target.astype(np.int64)})


def token_dataset(n_sequences: int, seq_len: int, vocab: int, seed: int) -> Dataset:
    """Token sequences of length ``seq_len + 1`` from a seeded sparse Markov chain.

    Each token has four likely successors, so a small language model can learn something.
    numpy's Philox generator is bit-stable across platforms and numpy versions.
    """
    rng = np.random.Generator(np.random.Philox(key=seed))
    successors = rng.integers(0, vocab, size=(vocab, 4))
    tokens = np.empty((n_sequences, seq_len + 1), dtype=np.int64)
    tokens[:, 0] = rng.integers(0, vocab, size=n_sequences)
    choices = rng.integers(0, 4, size=(n_sequences, seq_len))
    for t in range(seq_len):
        tokens[:, t + 1] = successors[tokens[:, t], choices[:, t]]
    return Dataset({"tokens": tokens})


def read_dataset_file(location: str | Path) -> Dataset:
    """Read a user dataset from .npz (no pickle) or .safetensors; each array is one field."""
    path = Path(location)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                fields = {name: np.asarray(archive[name]) for name in archive.files}
        elif path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            fields = dict(load_file(str(path)))
        else:
            raise DatasetError(f"dataset file {path}: expected a .npz or .safetensors file")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"dataset file {path}: cannot read ({exc})") from exc
    return Dataset(fields)


def file_dataset_root(location: str | Path) -> str:
    """The hex sample root to put in a job spec for a user dataset file."""
    return read_dataset_file(location).root.hex()


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
            found = uploaded_datasets().get(self._declared_root)
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
