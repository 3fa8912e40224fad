"""Jobs that travel: a file dataset by its sample root and description, a model directory by
its inlined config and uploaded parameters; providers find uploads by content, never by path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.jobs.datasets import Dataset, file_dataset_root, load_dataset
from verde.protocol.jobs.errors import DatasetError, JobSpecError
from verde.protocol.jobs.portable import portable_job
from verde.protocol.jobs.uploaded_datasets import (
    DatasetStore,
    dataset_upload,
    is_dataset_upload,
    uploaded_datasets,
)
from verde.protocol.provider.provider import Provider

from .conftest import key, tiny_spec


def _digits_file(path: Path, n: int = 24, seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.random((n, 64), dtype=np.float32),
             y=rng.integers(0, 10, size=n).astype(np.int64))
    return {"name": "file", "location": str(path), "root": file_dataset_root(path)}


def test_a_file_dataset_travels_by_its_root(tmp_path: Path) -> None:
    local = tiny_spec(dataset=_digits_file(tmp_path / "d.npz"), steps=3)
    job = portable_job(local)
    assert "location" not in job.spec.dataset
    assert job.spec.dataset["n_samples"] == 24
    assert job.spec.dataset["fields"] == {"x": {"dtype": "float32", "shape": [64]},
                                          "y": {"dtype": "int64", "shape": []}}
    assert [what for what, _ in job.uploads] == ["dataset"]
    # The same samples give the same result as the job run from the file.
    from_file = Provider(key("portable-file"), "file")
    from_file.submit(local)
    (tmp_path / "d.npz").rename(tmp_path / "gone.npz")
    from_upload = Provider(key("portable-upload"), "upload")
    from_upload.put_state(job.uploads[0][1])
    from_upload.submit(job.spec)
    assert (from_upload.jobs[job.spec.job_id].step_roots
            == from_file.jobs[local.job_id].step_roots)


def test_a_described_dataset_without_its_samples_is_refused_at_submission(
        tmp_path: Path) -> None:
    job = portable_job(tiny_spec(dataset=_digits_file(tmp_path / "other.npz", seed=7)))
    with pytest.raises(DatasetError, match="not on this machine"):
        Provider(key("portable-missing"), "missing").submit(job.spec)
    # An arbiter (no samples) still knows the dataset's root and shape.
    ctx = JobContext.from_spec(job.spec)
    assert ctx.dataset.root.hex() == job.spec.dataset["root"]
    assert ctx.dataset.n_samples == 24


def test_uploaded_samples_must_match_the_description(tmp_path: Path) -> None:
    spec = _digits_file(tmp_path / "d.npz", seed=3)
    wrong = {**spec, "n_samples": 25, "fields": {"x": {"dtype": "float32", "shape": [64]},
                                                 "y": {"dtype": "int64", "shape": []}}}
    del wrong["location"]
    uploaded_datasets().put(load_dataset(spec))
    with pytest.raises(DatasetError, match="differ from the job's description"):
        load_dataset(wrong).sample(0)


@pytest.mark.parametrize(("dataset", "match"), [
    ({"name": "file", "root": "ab" * 32}, "give 'location'"),
    ({"name": "file", "root": "ab" * 32, "n_samples": 0, "fields": {}}, "n_samples"),
    ({"name": "file", "root": "ab" * 32, "n_samples": 3,
      "fields": {"x": {"dtype": "complex64", "shape": [2]}}}, "field 'x'"),
    ({"name": "file", "root": "ab" * 32, "n_samples": 3,
      "fields": {"x": {"dtype": "float32", "shape": [-1]}}}, "field 'x'"),
])
def test_bad_dataset_descriptions_are_refused(dataset: dict[str, object], match: str) -> None:
    with pytest.raises(JobSpecError, match=match):
        tiny_spec(dataset=dataset)


def test_the_store_is_bounded_and_recognises_uploads() -> None:
    def dataset(n: int) -> Dataset:
        return Dataset({"x": np.full((n, 4), n, dtype=np.float32)})

    store = DatasetStore(max_datasets=2, max_bytes=1000)
    first, second = store.put(dataset(2)), store.put(dataset(3))
    store.get(first)
    third = store.put(dataset(4))
    assert first in store and third in store and second not in store  # least recently used
    with pytest.raises(DatasetError, match="limit"):
        store.put(dataset(100))
    upload = dataset_upload(dataset(2))
    assert is_dataset_upload(upload)
    assert not is_dataset_upload({"param/w": torch.zeros(1)})
    assert not is_dataset_upload({"dataset/": torch.zeros(1)})
    with pytest.raises(ValueError, match="max_bytes"):
        DatasetStore(max_bytes=0)


def test_a_model_directory_travels_as_an_inline_config_and_parameters(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from tests.verde.protocol.hf_jobs import tiny_config, write_dataset
    from verde.protocol.jobs.hf.program import model_directory_spec

    model_dir = tmp_path / "model"
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(**tiny_config("bert"))).save_pretrained(
        model_dir)
    local = tiny_spec(program="hf", config=model_directory_spec(
        model_dir, "sequence-classification", num_labels=3),
        dataset=write_dataset(tmp_path, "bert", "sequence-classification"),
        optimizer={"name": "adamw", "lr": 0.01}, steps=2, batch_size=4,
        checkpoint_interval=1)
    job = portable_job(local)
    assert "model" not in job.spec.config and "hf_config" in job.spec.config
    assert [what for what, _ in job.uploads] == ["dataset", "parameters"]
    params = job.uploads[1][1]
    assert all(name.startswith(PARAM) for name in params)  # no optimizer slots travel
    from_dir = Provider(key("portable-hf-dir"), "dir")
    from_dir.submit(local)
    shutil.rmtree(model_dir)
    travelled = Provider(key("portable-hf-up"), "up")
    for _, state in job.uploads:
        travelled.put_state(state)
    travelled.submit(job.spec)
    a = from_dir.state_at(from_dir.jobs[local.job_id], 2)
    b = travelled.state_at(travelled.jobs[job.spec.job_id], 2)
    assert all(torch.equal(a[n], b[n]) for n in a)
