"""A training run cut into partition-gradient jobs, so coded training can be refereed.

The in-process :mod:`verde.coding.training` defines a partition gradient with a local
function. Over untrusted providers the gradient of partition ``p`` of step ``t`` must be a
*job* every party can name: a one-step ``kind = "gradient"`` verde job
(``verde.protocol.jobs.spec``) over the samples of that partition, starting from the state whose
root is committed in the job (``init``). A provider commits to its answer like to any step, it can
be fetched with a proof, and two replicas that disagree are settled by an ordinary verde dispute
over that job (Verde, Arun et al. 2025), which names the faulty one instead of merely outvoting it
(DRACO, Chen et al. 2018, only outvotes).

The step gradient is *defined* as ``(g_0 + g_1 + ... + g_{P-1}) / P`` — partition gradients
(each the mean loss gradient over its equal-sized slice of the step's batch) added in
partition order, then divided by the number of partitions — so it is the full-batch mean
gradient up to rounding, and the same bits whichever replicas answered. The optimizer update
is the job's own (``verde.protocol.jobs.optimizers``), run by the coordinator under the job's
backend.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from proofs.state import StateCommitment
from verde.errors import VerdeInputError
from verde.protocol.graph.execution import execution_context
from verde.protocol.jobs.context import GRAD, PARAM, JobContext
from verde.protocol.jobs.optimizers import init_optimizer_state, optimizer_update
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.messages import TensorBlob

Params = dict[str, torch.Tensor]



class CodedJobError(VerdeInputError):
    """A job spec and a code that cannot make coded training (kind, batch, partitions)."""

@dataclass(frozen=True)
class GradientRound:
    """What every worker of one coded step needs: the step and the committed parameters."""

    step: int
    state: Mapping[str, torch.Tensor]
    root: str
    blobs: Mapping[str, TensorBlob] = field(repr=False)


@dataclass(frozen=True)
class CodedJob:
    """A ``kind = "train"`` job spec whose steps are computed as coded partition gradients."""

    base: JobSpec
    n_partitions: int

    def __post_init__(self) -> None:
        if self.base.kind != "train":
            raise CodedJobError(f"coded training needs a train job spec, got kind "
                             f"{self.base.kind!r}")
        if self.base.init:
            raise CodedJobError("coded training starts from the program's seeded parameters; "
                             "a base spec with init is not supported")
        p = self.n_partitions
        if not isinstance(p, int) or isinstance(p, bool) or p < 1:
            raise CodedJobError(f"n_partitions must be a positive int, got {p!r}")
        if self.base.batch_size % p:
            raise CodedJobError(f"batch_size {self.base.batch_size} is not divisible into "
                             f"{p} equal partitions")

    @functools.cached_property
    def context(self) -> JobContext:
        return JobContext.from_spec(self.base)

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.context.param_names

    def partition_samples(self, step: int, partition: int) -> list[int]:
        """Dataset indices of partition ``partition`` of the batch of ``step`` (1-based)."""
        if not 0 <= partition < self.n_partitions:
            raise CodedJobError(f"partition must be in [0, {self.n_partitions}), got {partition!r}")
        size = self.base.batch_size // self.n_partitions
        batch = self.context.batch_indices(step)
        return batch[partition * size: (partition + 1) * size]

    def gradient_spec(self, step: int, partition: int, root: str) -> JobSpec:
        """The one-step job "gradient of this partition at the state with root ``root``"."""
        return JobSpec.from_mapping({
            "program": self.base.program, "kind": "gradient",
            "config": dict(self.base.config), "dataset": dict(self.base.dataset),
            "samples": self.partition_samples(step, partition), "seed": self.base.seed,
            "backend": self.base.backend, "init": {"root": root},
        })  # fmt: skip

    def initial_training_state(self) -> tuple[Params, dict[str, torch.Tensor]]:
        """Seeded parameters and zero optimizer state, as the train job itself starts."""
        ctx = self.context
        params = ctx.program.initial_parameters(ctx.module, self.base.seed)
        params = {n: params[n] for n in ctx.param_names}
        return params, init_optimizer_state(self.base.optimizer, params)

    def gradient_round(self, step: int, params: Mapping[str, torch.Tensor]) -> GradientRound:
        """State 0 of every gradient job of ``step`` (the same for all partitions) and its root."""
        probe = self.gradient_spec(step, 0, "0" * 64)
        state = JobContext.from_spec(probe).initial_state(params)
        root = StateCommitment.from_tensors(state).root.hex()
        blobs = {name: TensorBlob.from_tensor(t) for name, t in state.items()}
        return GradientRound(step, state, root, blobs)

    def flatten(self, grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``grad/<name>`` entries concatenated in parameter order: the coded vector."""
        return torch.cat([grads[GRAD + n].reshape(-1) for n in self.param_names])

    def grad_names(self) -> list[str]:
        return [GRAD + n for n in self.param_names]

    def apply(self, params: Mapping[str, torch.Tensor], opt_state: Mapping[str, torch.Tensor],
              decoded: torch.Tensor, step: int) -> tuple[Params, dict[str, torch.Tensor]]:
        """One optimizer step with the decoded sum of partition gradients (see module doc)."""
        mean = decoded / self.n_partitions
        grads: dict[str, torch.Tensor] = {}
        offset = 0
        for n in self.param_names:
            count = params[n].numel()
            grads[n] = mean[offset: offset + count].reshape(params[n].shape)
            offset += count
        if offset != mean.numel():
            raise CodedJobError(f"decoded gradient has {mean.numel()} elements, the parameters "
                             f"{offset}")
        with execution_context(self.base.backend):
            new_params, new_opt = optimizer_update(self.base.optimizer, params, grads,
                                                   opt_state, step)  # fmt: skip
        return ({n: t.detach() for n, t in new_params.items()},
                {k: t.detach() for k, t in new_opt.items()})


def state_digest(params: Mapping[str, torch.Tensor], opt_state: Mapping[str, Any]) -> str:
    """Root over parameters and optimizer state: what "the same final state" means."""
    tensors = {PARAM + n: t for n, t in params.items()}
    tensors.update({"opt/" + k: t for k, t in opt_state.items()})
    return StateCommitment.from_tensors(tensors).root.hex()
