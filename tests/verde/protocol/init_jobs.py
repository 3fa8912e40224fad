"""Jobs that start from an uploaded state 0 (``init``), shared by the in-process and gRPC tests."""

from __future__ import annotations

from typing import Any

import torch

from proofs.state import StateCommitment
from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.jobs.spec import JobSpec

BASE: dict[str, Any] = {
    "program": "mlp",
    "config": {"hidden": 16},
    "dataset": {"name": "digits"},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "steps": 3,
    "batch_size": 8,
    "seed": 5,
    "checkpoint_interval": 2,
}


def perturbed_state(scale: float = 0.5, **changes: Any) -> dict[str, torch.Tensor]:
    """State 0 of the seeded job ``BASE | changes`` with every parameter scaled by ``scale``."""
    ctx = JobContext.from_spec(JobSpec.from_mapping({**BASE, **changes}))
    seeded = ctx.initial_state()
    return ctx.initial_state({n: seeded[PARAM + n] * scale for n in ctx.param_names})


def init_spec(state: dict[str, torch.Tensor], **changes: Any) -> JobSpec:
    """The job ``BASE | changes`` starting from ``state`` (named by its root)."""
    root = StateCommitment.from_tensors(state).root.hex()
    return JobSpec.from_mapping({**BASE, **changes, "init": {"root": root}})
