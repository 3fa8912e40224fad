"""The program registry, user programs, and admission (traceability, shapes, data)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch

from verde.protocol.graph.admission import admit_job
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.errors import JobSpecError, ProgramNotTraceableError
from verde.protocol.jobs.programs import Program
from verde.protocol.jobs.registry import get_program, program_names, register_program

from .conftest import tiny_spec


class _Linear(Program):
    name = "test-linear"
    defaults: ClassVar[dict[str, Any]] = {"classes": 10}

    def build(self, config: Mapping[str, Any], fields: Any) -> torch.nn.Module:
        (features,), _ = fields["x"]
        return torch.nn.Linear(features, config["classes"])

    def outputs(self, module: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return module(batch["x"])

    def loss(self, module: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(self.outputs(module, batch), batch["y"])


class _ValueDependent(_Linear):
    name = "test-value-dependent"

    def loss(self, module: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        loss = super().loss(module, batch)
        return loss * 2 if loss.item() > 1 else loss


class _CapturesConstant(_Linear):
    name = "test-captured-constant"
    scale = torch.ones(10)

    def outputs(self, module: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return module(batch["x"]) * self.scale


def test_builtins_are_registered() -> None:
    assert {"mlp", "cnn", "gpt"} <= set(program_names())
    with pytest.raises(ValueError, match="already registered"):
        register_program(get_program("mlp"))


def test_user_program_runs_after_registration() -> None:
    register_program(_Linear(), replace=True)
    ctx = admit_job(tiny_spec(program="test-linear", config={}), thorough=True)
    assert ctx.param_names == ("weight", "bias")


def test_value_dependent_control_flow_is_rejected_at_submission() -> None:
    register_program(_ValueDependent(), replace=True)
    with pytest.raises(ProgramNotTraceableError, match="cannot be disputed"):
        admit_job(tiny_spec(program="test-value-dependent", config={}))


def test_captured_constants_are_rejected_at_submission() -> None:
    register_program(_CapturesConstant(), replace=True)
    with pytest.raises(ProgramNotTraceableError, match="captured"):
        admit_job(tiny_spec(program="test-captured-constant", config={}))


def test_bad_shapes_and_label_ranges_are_rejected() -> None:
    with pytest.raises(JobSpecError, match="no field 'tokens'"):
        admit_job(tiny_spec(program="gpt", config={}))
    with pytest.raises(JobSpecError, match=r"labels y must be integers in \[0, 5\)"):
        admit_job(tiny_spec(config={"hidden": 8, "classes": 5}))
    with pytest.raises(JobSpecError, match=r"tokens must be in \[0, 8\)"):
        admit_job(tiny_spec(program="gpt", config={"vocab": 8, "d_model": 8, "heads": 2,
                                                    "layers": 1}, dataset={"name": "tokens"}))


@pytest.mark.parametrize(
    ("program", "dataset", "config", "backend"),
    [
        ("mlp", {"name": "digits"}, {"hidden": 8}, "repops"),
        ("gpt", {"name": "tokens", "n_sequences": 32, "seq_len": 8, "vocab": 16},
         {"vocab": 16, "d_model": 8, "heads": 2, "layers": 1}, "repops"),
        ("cnn", {"name": "digits"}, {"channels": 2}, "torch"),
    ],
)
def test_builtins_pass_thorough_admission(program: str, dataset: dict, config: dict,
                                          backend: str) -> None:
    spec = tiny_spec(program=program, dataset=dataset, config=config, backend=backend, steps=3,
                     batch_size=4)
    ctx = admit_job(spec, thorough=True)
    assert isinstance(ctx, JobContext)


def test_initial_parameters_are_deterministic() -> None:
    ctx = JobContext.from_spec(tiny_spec())
    a, b = ctx.initial_state(), ctx.initial_state()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = JobContext.from_spec(tiny_spec(seed=99)).initial_state()
    assert not torch.equal(a["param/0.weight"], other["param/0.weight"])


def test_matmul_program_is_one_product_of_uploaded_operands() -> None:
    spec = tiny_spec(program="matmul", kind="infer", optimizer={}, config={"out_features": 3},
                     batch_size=4, steps=1)
    ctx = admit_job(spec, thorough=True)
    weight = ctx.program.initial_parameters(ctx.module, 0)["weight"]
    assert tuple(weight.shape) == (64, 3)
    assert ctx.output_meta() == ((4, 3), torch.float32)
    with pytest.raises(JobSpecError, match="kind"):
        tiny_spec(program="matmul", config={"out_features": 3})  # a train job
    with pytest.raises(JobSpecError, match="no field 'x'"):
        admit_job(tiny_spec(program="matmul", kind="infer", optimizer={},
                            dataset={"name": "tokens"}, config={"out_features": 2}))
