"""Job specs: parsing, defaults, content addressing, and one clear error per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verde.protocol.jobs.errors import JobSpecError, UnknownProgramError
from verde.protocol.jobs.spec import JobSpec, parse_job_spec
from verde.protocol.jobs.spec_file import load_job_spec

from .conftest import tiny_spec

TOML = """
program = "mlp"
steps = 10
batch_size = 4
seed = 1
[config]
hidden = 8
[dataset]
name = "digits"
[optimizer]
name = "sgd"
lr = 0.05
"""


def test_toml_and_json_give_the_same_job_id(tmp_path: Path) -> None:
    a = parse_job_spec(TOML, "toml")
    (tmp_path / "job.json").write_text(json.dumps(a.to_dict()))
    b = load_job_spec(tmp_path / "job.json")
    assert a.job_id == b.job_id
    assert len(a.job_id) == 64
    assert a.optimizer == {"name": "sgd", "lr": 0.05, "momentum": 0.0, "weight_decay": 0.0,
                           "dampening": 0.0, "nesterov": False, "maximize": False,
                           "clip_grad_norm": 0.0}
    assert a.backend == "repops"


def test_defaults_are_part_of_the_identity() -> None:
    explicit = tiny_spec(optimizer={"name": "adam", "lr": 0.01, "beta1": 0.9})
    assert explicit.job_id == tiny_spec().job_id
    assert tiny_spec(seed=4).job_id != tiny_spec().job_id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"program": "resnet"}, "unknown program 'resnet'"),
        ({"steps": -1}, "'steps' must be an integer in \\[1, "),
        ({"steps": 2**70}, "'steps' must be an integer in \\[1, "),
        ({"batch_size": 0}, "'batch_size' must be an integer in \\[1, "),
        ({"seed": -3}, "seed must be an integer"),
        ({"dataset": {"name": "imagenet"}}, "dataset: name must be"),
        ({"dataset": {"name": "file", "location": "/nonexistent.npz", "root": "0" * 64}},
         "does not exist"),
        ({"optimizer": {"name": "lbfgs"}}, "optimizer: name must be"),
        ({"optimizer": {"name": "sgd", "lr": -1}}, "lr must be positive"),
        ({"config": {"hidden": "wide"}}, "config hidden must be int"),
        ({"config": {"depth": 3}}, "unknown config key"),
        ({"kind": "finetune"}, "kind must be one of"),
        ({"backend": "cuda"}, "backend must be one of"),
        ({"colour": "blue"}, "unknown field"),
    ],
)
def test_bad_specs_are_rejected_with_a_clear_error(change: dict, message: str) -> None:
    with pytest.raises(JobSpecError, match=message):
        tiny_spec(**change)


def test_unknown_program_is_a_specific_error() -> None:
    with pytest.raises(UnknownProgramError):
        tiny_spec(program="nope")


def test_missing_dataset_and_optimizer() -> None:
    doc = tiny_spec().to_dict()
    del doc["dataset"]
    with pytest.raises(JobSpecError, match="dataset is missing"):
        JobSpec.from_mapping(doc)
    doc = tiny_spec().to_dict()
    del doc["optimizer"]
    with pytest.raises(JobSpecError, match="needs an optimizer"):
        JobSpec.from_mapping(doc)


def test_invalid_toml_and_suffix(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match="invalid TOML"):
        parse_job_spec("program = ", "toml")
    (tmp_path / "job.yaml").write_text("x")
    with pytest.raises(JobSpecError, match=r"\.toml or \.json"):
        load_job_spec(tmp_path / "job.yaml")


def test_inference_spec_takes_no_optimizer() -> None:
    spec = tiny_spec(kind="infer", optimizer={})
    assert spec.optimizer == {}
    with pytest.raises(JobSpecError, match="takes no optimizer"):
        tiny_spec(kind="infer")
