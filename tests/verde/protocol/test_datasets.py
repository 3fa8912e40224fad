"""Datasets: committed per sample, provable one sample at a time, no pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from proofs.errors import InvalidProof
from verde.protocol.jobs.batching import batch_indices
from verde.protocol.jobs.datasets import (
    digits_dataset,
    file_dataset_root,
    load_dataset,
    read_dataset_file,
    token_dataset,
    verify_sample,
)
from verde.protocol.jobs.errors import DatasetError, JobSpecError

from .conftest import tiny_spec


def test_digits_sample_proofs() -> None:
    data = digits_dataset()
    assert data.n_samples == 1797
    sample = data.sample(5)
    verify_sample(data.root, data.n_samples, 5, sample, data.proof(5))
    tampered = {"x": sample["x"].copy(), "y": sample["y"]}
    tampered["x"][0] += 1
    with pytest.raises(InvalidProof):
        verify_sample(data.root, data.n_samples, 5, tampered, data.proof(5))
    with pytest.raises(InvalidProof):
        verify_sample(data.root, data.n_samples, 6, sample, data.proof(5))


def test_token_stream_is_a_function_of_its_parameters() -> None:
    a, b = token_dataset(16, 8, 32, 1), token_dataset(16, 8, 32, 1)
    assert a.root == b.root
    assert token_dataset(16, 8, 32, 2).root != a.root
    assert a.fields["tokens"].shape == (16, 9) and a.fields["tokens"].max() < 32


def test_user_files_npz_and_safetensors(tmp_path: Path) -> None:
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    y = np.arange(10, dtype=np.int64) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    save_file({"x": x, "y": y}, str(tmp_path / "d.safetensors"))
    root = file_dataset_root(tmp_path / "d.npz")
    assert root == file_dataset_root(tmp_path / "d.safetensors")
    spec = tiny_spec(dataset={"name": "file", "location": str(tmp_path / "d.npz"), "root": root},
                     config={"hidden": 4, "classes": 3})
    assert load_dataset(spec.dataset).n_samples == 10
    moved = tiny_spec(dataset={"name": "file", "location": str(tmp_path / "d.safetensors"),
                               "root": root}, config={"hidden": 4, "classes": 3})
    assert moved.job_id == spec.job_id  # the location is not part of the identity


def test_user_file_with_wrong_root_or_pickle_is_rejected(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 2), dtype=np.float32))
    spec = tiny_spec(dataset={"name": "file", "location": str(tmp_path / "d.npz"),
                              "root": "ab" * 32})
    with pytest.raises(DatasetError, match="does not match"):
        load_dataset(spec.dataset)
    np.savez(tmp_path / "p.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DatasetError, match="cannot read"):
        read_dataset_file(tmp_path / "p.npz")
    with pytest.raises(JobSpecError, match="root"):
        tiny_spec(dataset={"name": "file", "location": str(tmp_path / "d.npz")})


def test_batches_are_a_function_of_seed_and_step() -> None:
    first = batch_indices("train", 7, 3, 100, 16)
    assert first == batch_indices("train", 7, 3, 100, 16)
    assert first != batch_indices("train", 7, 4, 100, 16)
    assert first != batch_indices("train", 8, 3, 100, 16)
    assert all(0 <= i < 100 for i in first)
    assert batch_indices("infer", 7, 2, 10, 4) == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="step must be"):
        batch_indices("train", 7, 0, 100, 16)
