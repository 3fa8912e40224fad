"""Gradient jobs and explicit initial states (``kind = "gradient"``, ``init``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from proofs.state import StateCommitment
from verde.protocol.dispute.multi import resolve
from verde.protocol.faults.plan import FaultPlan
from verde.protocol.faults.provider import CheatingProvider
from verde.protocol.graph.execution import run_step
from verde.protocol.jobs.context import GRAD, PARAM, RNG, JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.local import LocalPeer

from .conftest import key
from .init_jobs import BASE, init_spec, perturbed_state

SAMPLES = [5, 3, 900, 17, 42, 8]


def gradient_spec(**changes: Any) -> JobSpec:
    doc: dict[str, Any] = {"program": "mlp", "config": {"hidden": 16}, "kind": "gradient",
                           "dataset": {"name": "digits"}, "samples": SAMPLES, "seed": 2}
    doc.update(changes)
    return JobSpec.from_mapping(doc)


def test_gradient_job_defaults_to_one_step_over_its_samples() -> None:
    spec = gradient_spec()
    assert (spec.steps, spec.batch_size, spec.samples) == (1, len(SAMPLES), tuple(SAMPLES))
    ctx = JobContext.from_spec(spec)
    assert ctx.batch_indices(1) == SAMPLES
    assert gradient_spec(samples=SAMPLES[::-1]).job_id != spec.job_id


def test_gradient_state_holds_the_gradient_of_the_mean_loss() -> None:
    spec = gradient_spec(backend="torch")
    ctx = JobContext.from_spec(spec)
    state0 = ctx.initial_state()
    state1 = run_step(ctx, state0, 1)
    assert set(state1) == set(ctx.state_structure())
    for n in ctx.param_names:
        assert torch.equal(state1[PARAM + n], state0[PARAM + n])
    # plain torch autograd of the program's loss over the same samples
    batch = {k.split("/", 1)[1]: v for k, v in ctx.batch(1).items()}
    leaves = {n: state0[PARAM + n].clone().requires_grad_(True) for n in ctx.param_names}
    module = ctx.program.build(spec.config, ctx.dataset.sample_shapes())
    loss = torch.func.functional_call(module, leaves, (batch["x"],))
    loss = torch.nn.functional.cross_entropy(loss, batch["y"])
    grads = torch.autograd.grad(loss, list(leaves.values()))
    for n, g in zip(ctx.param_names, grads, strict=True):
        torch.testing.assert_close(state1[GRAD + n], g, rtol=1e-5, atol=1e-6)
    assert any(state1[GRAD + n].abs().sum() > 0 for n in ctx.param_names)


def test_gradient_dispute_names_the_corrupting_provider() -> None:
    spec = gradient_spec()
    from verde.protocol.provider.provider import Provider

    honest = Provider(key("grad-honest"), "honest")
    cheat = CheatingProvider(key("grad-cheat"), "cheat", plan=FaultPlan("corrupt_op", seed=4))
    honest.submit(spec)
    cheat.submit(spec)
    res = resolve(spec, {"honest": LocalPeer(honest), "cheat": LocalPeer(cheat)})
    assert len(res.groups) == 2  # the corrupted op changed the committed gradient
    assert res.honest == ["honest"] and res.cheaters == ["cheat"]
    assert res.disputes[0].verdict.reason == "recomputed_operator"


@pytest.mark.parametrize(("changes", "message"), [
    ({"samples": []}, "non-empty list"),
    ({"samples": [1, -2]}, "samples[1]"),
    ({"samples": [1, True]}, "samples[1]"),
    ({"samples": [1, 10**6]}, "out of range"),
    ({"steps": 2}, "exactly 1 step"),
    ({"batch_size": 3}, "differs from the 6 samples"),
    ({"optimizer": {"name": "sgd"}}, "takes no optimizer"),
])
def test_bad_gradient_specs_are_refused_clearly(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSpecError, match=message.replace("[", r"\[")):
        JobContext.from_spec(gradient_spec(**changes))


def test_samples_belong_to_gradient_jobs_only() -> None:
    with pytest.raises(JobSpecError, match="only gradient jobs list samples"):
        JobSpec.from_mapping({"program": "mlp", "dataset": {"name": "digits"}, "steps": 1,
                              "batch_size": 2, "optimizer": {"name": "sgd"}, "samples": [1, 2]})


#: ``init_jobs.BASE`` made a gradient job over ``SAMPLES``.
GRADIENT: dict[str, Any] = {"kind": "gradient", "optimizer": {}, "samples": SAMPLES, "steps": 1,
                            "batch_size": len(SAMPLES), "checkpoint_interval": 1}


def test_init_root_names_the_explicit_state_zero() -> None:
    plain = JobSpec.from_mapping({**BASE, **GRADIENT})
    state = perturbed_state(0.5, **GRADIENT)
    root = StateCommitment.from_tensors(state).root.hex()
    spec = init_spec(state, **GRADIENT)
    assert spec.init_root == bytes.fromhex(root) and spec.job_id != plain.job_id
    assert "init" not in plain.to_dict()  # ids of jobs without init did not change
    ctx = JobContext.from_spec(spec)
    assert ctx.initial_state_root().hex() == root
    ctx.check_initial_state(state)
    with pytest.raises(JobSpecError, match="cannot be derived"):
        ctx.initial_state()


def test_initial_states_that_do_not_fit_are_refused() -> None:
    state = perturbed_state(0.5, **GRADIENT)
    ctx = JobContext.from_spec(init_spec(state, **GRADIENT))
    name = next(n for n in state if n.startswith(PARAM))
    with pytest.raises(JobSpecError, match="its root"):
        ctx.check_initial_state({**state, name: state[name] * 2})
    with pytest.raises(JobSpecError, match="missing entries"):
        ctx.check_initial_state({k: v for k, v in state.items() if k != name})
    with pytest.raises(JobSpecError, match=r"expected torch\.float32"):
        ctx.check_initial_state({**state, name: state[name].double()})
    with pytest.raises(JobSpecError, match="rng must be"):
        ctx.check_initial_state({**state, RNG: torch.tensor([9, 9])})


@pytest.mark.parametrize("init", [{"root": "ab"}, {"root": "G" * 64}, {"root": "0" * 64, "x": 1},
                                  "00"])
def test_malformed_init_is_refused(init: Any) -> None:
    with pytest.raises(JobSpecError, match="init"):
        gradient_spec(init=init)
