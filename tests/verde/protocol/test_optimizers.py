"""A verde job's optimizer is repops.optim's: the job's parameters equal a hand-written
training loop with ``repops.optim.SGD``/``Adam``/``AdamW`` under ``repops.reproducible()``,
bit for bit, for each optimizer and setting."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import repops
from proofs import SigningKey
from repops.optim import SGD, Adam, AdamW, clip_grad_norm_
from verde.protocol.jobs.context import BATCH, PARAM, JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.provider.provider import Provider

from .conftest import tiny_spec

STEPS = 4
CASES = [
    ({"name": "sgd", "lr": 0.1}, SGD, {"lr": 0.1}),
    ({"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}, SGD,
     {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ({"name": "sgd", "lr": 0.05, "momentum": 0.8, "dampening": 0.1}, SGD,
     {"lr": 0.05, "momentum": 0.8, "dampening": 0.1}),
    ({"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "maximize": True}, SGD,
     {"lr": 0.05, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ({"name": "adam", "lr": 0.01}, Adam, {"lr": 0.01}),
    ({"name": "adam", "lr": 0.01, "weight_decay": 0.1, "amsgrad": True}, Adam,
     {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ({"name": "adamw", "lr": 0.01, "beta1": 0.8, "beta2": 0.99}, AdamW,
     {"lr": 0.01, "betas": (0.8, 0.99)}),
    ({"name": "adamw", "lr": 0.01, "clip_grad_norm": 0.5}, AdamW, {"lr": 0.01}),
]  # fmt: skip


def by_hand(ctx: JobContext, cls: type[torch.optim.Optimizer], kwargs: dict[str, Any],
            clip: float) -> dict[str, torch.Tensor]:
    module = ctx.program.build(ctx.spec.config, ctx.dataset.sample_shapes())
    start = ctx.program.initial_parameters(ctx.module, ctx.spec.seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(start[name])
    opt = cls(module.parameters(), **kwargs)
    for step in range(1, STEPS + 1):
        fields = {k[len(BATCH):]: v for k, v in ctx.batch(step).items()}
        with repops.reproducible():
            ctx.program.loss(module, fields).backward()
            if clip:
                clip_grad_norm_(module.parameters(), clip)
            opt.step()
        opt.zero_grad()
    return {n: p.detach() for n, p in module.named_parameters()}


@pytest.mark.parametrize(("settings", "cls", "kwargs"), CASES,
                         ids=[f"{c[0]['name']}-{i}" for i, c in enumerate(CASES)])
def test_a_job_equals_repops_optim_run_by_hand(settings: dict, cls: type,
                                               kwargs: dict) -> None:
    spec = tiny_spec(optimizer=settings, steps=STEPS)
    provider = Provider(SigningKey.from_seed(b"\7" * 32), "p")
    provider.submit(spec)
    record = provider.jobs[spec.job_id]
    final = provider.state_at(record, STEPS)
    ctx = JobContext.from_spec(spec)
    expected = by_hand(ctx, cls, kwargs, settings.get("clip_grad_norm", 0.0))
    for name, value in expected.items():
        got = final[PARAM + name]
        assert got.dtype == value.dtype and torch.equal(got.view(torch.int32),
                                                        value.view(torch.int32)), name
    # the runs moved: the check compares trained parameters, not the initial ones
    start = ctx.initial_state()
    assert not torch.equal(final[PARAM + "0.weight"], start[PARAM + "0.weight"])


def test_a_different_setting_gives_different_bits() -> None:
    spec = tiny_spec(optimizer={"name": "adam", "lr": 0.01}, steps=STEPS)
    ctx = JobContext.from_spec(spec)
    ours = by_hand(ctx, Adam, {"lr": 0.01}, 0.0)
    other = by_hand(ctx, Adam, {"lr": 0.01, "betas": (0.9, 0.99)}, 0.0)
    assert not torch.equal(ours["0.weight"], other["0.weight"])


@pytest.mark.parametrize(("settings", "match"), [
    ({"name": "sgd", "nesterov": True}, "nesterov needs a momentum"),
    ({"name": "sgd", "momentum": 0.9, "nesterov": True, "dampening": 0.1}, "zero dampening"),
    ({"name": "adam", "amsgrad": 1}, "amsgrad must be true or false"),
    ({"name": "adamw", "clip_grad_norm": -1.0}, "clip_grad_norm must be >= 0"),
    ({"name": "sgd", "dampening": 1.0}, r"dampening must be in \[0, 1\)"),
    ({"name": "adam", "betas": [0.9, 0.99]}, "unknown setting"),
])
def test_bad_optimizer_settings_are_refused_naming_the_field(settings: dict, match: str) -> None:
    with pytest.raises(JobSpecError, match=match):
        tiny_spec(optimizer=settings)
