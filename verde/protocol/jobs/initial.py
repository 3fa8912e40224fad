"""Starting a job from given parameters: the client uploads the parameters only, the provider
fills in the rest of state 0 (zeroed optimizer slots, the RNG entry).

Why: a model's optimizer slots are zeros at step 0 (Adam's two moments double an upload for
nothing), and the uploaded tensors need no trust: the job names state 0 by its
``proofs.state.StateCommitment`` root (``init.root``) and the upload by its own root
(``init.params``), so a provider runs the job only on the state those parameters give.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from proofs.state import StateCommitment
from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.spec import JobSpec


def parameters_upload(params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state to upload for ``params`` (keyed by parameter name): ``param/<name>`` entries."""
    return {PARAM + name: t for name, t in params.items()}


def with_initial_parameters(spec: JobSpec, params: Mapping[str, torch.Tensor],
                            ) -> tuple[JobSpec, dict[str, torch.Tensor]]:
    """``spec`` started from ``params`` (``init = {root, params}``) and the state to upload."""
    ctx = JobContext.from_spec(spec)
    state0 = ctx.initial_state(params)
    upload = parameters_upload({n: state0[PARAM + n] for n in ctx.param_names})
    init = {"root": StateCommitment.from_tensors(state0).root.hex(),
            "params": StateCommitment.from_tensors(upload).root.hex()}
    return JobSpec.from_mapping({**spec.to_dict(), "init": init}), upload


def state_from_upload(ctx: JobContext, upload: Mapping[str, torch.Tensor],
                      ) -> dict[str, torch.Tensor]:
    """State 0 of an ``init.params`` job from its uploaded parameters (checked by name; the
    caller checks the result against ``init.root``)."""
    expected = {PARAM + n for n in ctx.param_names}
    if set(upload) != expected:
        missing, extra = sorted(expected - set(upload)), sorted(set(upload) - expected)
        raise JobSpecError(f"uploaded parameters of job {ctx.spec.job_id[:16]}: missing "
                           f"{missing[:5]}, unexpected {extra[:5]}")
    return ctx.initial_state({n: upload[PARAM + n] for n in ctx.param_names})
