"""Spec files: local paths relative to the file, not the working directory; the job sent to
providers (and so its certificates) the same wherever the file and the caller were; a missing
file named once, with its spec key and the path as resolved."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cli import exit_codes
from cli.main import main
from verde.protocol.jobs.datasets import file_dataset_root
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.portable import portable_job
from verde.protocol.jobs.spec_file import load_job_spec

JOB = """program = "mlp"
steps = 2
batch_size = 4
[config]
hidden = 8
[dataset]
name = "file"
location = "{location}"
root = "{root}"
[optimizer]
name = "sgd"
lr = 0.1
"""


def _job_dir(directory: Path, location: str = "data/d.npz") -> Path:
    """A job directory: ``job.toml`` naming ``data/d.npz`` relative to itself."""
    (directory / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = directory / "data" / "d.npz"
    np.savez(data, x=rng.random((12, 64), dtype=np.float32),
             y=rng.integers(0, 10, size=12).astype(np.int64))
    (directory / "job.toml").write_text(JOB.format(location=location,
                                                   root=file_dataset_root(data)))
    return directory / "job.toml"


def test_relative_paths_follow_the_spec_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    job = _job_dir(tmp_path / "jobs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ids, portable_ids = set(), set()
    for cwd, given in ((tmp_path, Path("jobs/job.toml")), (elsewhere, Path("../jobs/job.toml")),
                       (job.parent, Path("job.toml"))):
        monkeypatch.chdir(cwd)
        spec = load_job_spec(given)
        assert spec.dataset["location"] == str(job.parent / "data" / "d.npz")
        ids.add(spec.job_id)
        portable_ids.add(portable_job(spec).spec.job_id)
    assert len(ids) == 1 and len(portable_ids) == 1
    moved = shutil.copytree(job.parent, tmp_path / "moved")  # another place, another machine
    portable = portable_job(load_job_spec(moved / "job.toml")).spec
    assert {portable.job_id} == portable_ids and "location" not in portable.dataset
    absolute = _job_dir(tmp_path / "abs", location=str(job.parent / "data" / "d.npz"))
    shutil.rmtree(absolute.parent / "data")  # an absolute path stays as given
    assert load_job_spec(absolute).dataset["location"] == str(job.parent / "data" / "d.npz")


def test_a_missing_relative_file_is_one_error_naming_key_and_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    job = _job_dir(tmp_path / "jobs", location="data/missing.npz")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(JobSpecError) as info:
        load_job_spec("jobs/job.toml")
    message = str(info.value)
    assert "dataset.location" in message and "'data/missing.npz'" in message
    assert str(job.parent / "data" / "missing.npz") in message and "\n" not in message
    with pytest.raises(SystemExit) as exit_info:
        main(["delegate", "--provider", "127.0.0.1:1", "jobs/job.toml"])
    err = capsys.readouterr().err
    assert exit_info.value.code == exit_codes.BAD_INPUT and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "dataset.location" in err


def test_a_model_directory_is_relative_to_the_spec_file_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = pytest.importorskip("transformers")
    from tests.verde.protocol.hf_jobs import tiny_config, write_dataset

    jobs = tmp_path / "jobs"
    transformers.BertModel(transformers.BertConfig(**tiny_config("bert"))).save_pretrained(
        jobs / "model")
    data = write_dataset(jobs, "bert", "sequence-classification", n=4)
    (jobs / "job.toml").write_text(
        'program = "hf"\nsteps = 1\nbatch_size = 2\n[config]\nmodel = "model"\n'
        'task = "sequence-classification"\n[dataset]\nname = "file"\n'
        f'location = "{Path(data["location"]).name}"\nroot = "{data["root"]}"\n'
        '[optimizer]\nname = "sgd"\nlr = 0.1\n')
    monkeypatch.chdir(tmp_path)
    spec = load_job_spec(Path("jobs/job.toml"))
    assert spec.config["model"] == str(jobs / "model")
    monkeypatch.chdir(jobs)
    assert portable_job(load_job_spec("job.toml")).spec.job_id == \
        portable_job(spec).spec.job_id
    os.rename(jobs / "model", jobs / "gone")
    with pytest.raises(JobSpecError, match=r"config\.model = 'model' is .*jobs/model, which "):
        load_job_spec("job.toml")
