"""Budgets: a job's cost is estimated from its spec without allocating, and a job over a
limit is refused before anything is allocated, naming the limit."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from proofs import SigningKey
from verde.protocol.graph.budget import Budget, BudgetExceeded, estimate_cost, node_flops
from verde.protocol.provider.provider import Provider

from .conftest import tiny_spec


def test_the_estimate_of_a_small_mlp() -> None:
    spec = tiny_spec(steps=12)  # 64 -> 16 -> 10 on digits, Adam
    cost = estimate_cost(spec)
    params = 64 * 16 + 16 + 16 * 10 + 10
    assert cost.parameters == params
    assert cost.state_bytes == 3 * params * 4 + 2 * 8  # params, two Adam slots, rng
    assert cost.step_flops >= 2 * 2 * 8 * 64 * 16  # at least forward and backward of layer 1
    assert cost.total_flops == 12 * cost.step_flops
    assert cost.step_bytes > cost.state_bytes / 3


@pytest.mark.parametrize(("limit", "value"), [
    ("parameters", 1000), ("state_bytes", 4096), ("step_flops", 1000), ("total_flops", 10**5),
    ("steps", 5), ("step_bytes", 1024),
])
def test_each_limit_is_enforced_and_named(limit: str, value: int) -> None:
    spec = tiny_spec(steps=12)
    with pytest.raises(BudgetExceeded, match=limit) as info:
        estimate_cost(spec, Budget(**{limit: value}))
    assert info.value.limit == limit and info.value.allowed == value
    estimate_cost(spec, Budget(**{limit: 10**15}))  # a limit it fits passes


def test_a_huge_job_is_refused_before_anything_is_allocated() -> None:
    huge = tiny_spec(config={"hidden": 10**9, "layers": 1000}, steps=10**7)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BudgetExceeded, match="parameters"):
        estimate_cost(huge, Budget(parameters=10**8))
    with pytest.raises(BudgetExceeded, match="steps"):
        Provider(SigningKey.generate(), budget=Budget(steps=10**6)).submit(huge)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024  # a 10^12-parameter model was never materialised


def test_a_provider_refuses_jobs_beyond_its_store() -> None:
    provider = Provider(SigningKey.generate(), max_jobs=1)
    provider.submit(tiny_spec(steps=2))
    with pytest.raises(BudgetExceeded, match="jobs held"):
        provider.submit(tiny_spec(steps=2, seed=99))
    with pytest.raises(ValueError, match="max_jobs"):
        Provider(SigningKey.generate(), max_jobs=0)


def test_budget_values_are_checked() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive int"):
            Budget(parameters=bad)  # type: ignore[arg-type]


def test_matrix_product_flops() -> None:
    shapes = {("leaf", "a"): (8, 64), ("leaf", "b"): (64, 16), ("leaf", "c"): (16,)}
    mm = {"op": "aten.mm.default", "args": {"args": [{"leaf": "a"}, {"leaf": "b"}],
                                            "kwargs": {}}, "output_meta": [["float32", [8, 16]]]}
    assert node_flops(mm, shapes) == 2 * 8 * 64 * 16
    addmm = {**mm, "op": "aten.addmm.default",
             "args": {"args": [{"leaf": "c"}, {"leaf": "a"}, {"leaf": "b"}], "kwargs": {}}}
    assert node_flops(addmm, shapes) == 2 * 8 * 64 * 16 + 8 * 16
    relu = {"op": "aten.relu.default", "args": {"args": [{"leaf": "a"}], "kwargs": {}},
            "output_meta": [["float32", [8, 64]]]}
    assert node_flops(relu, shapes) == 8 * 64


def test_a_generate_jobs_estimate_is_its_costliest_step(tmp_path: Path) -> None:
    # steps of a generate job run over more tokens as they go: the last position of the
    # longest prompt bounds every step, so a budget cannot be passed on a short first step
    from verde.protocol.graph.budget import costliest_step, step_cost
    from verde.protocol.graph.execution import expected_structure
    from verde.protocol.jobs.context import JobContext

    from .generate_jobs import GREEDY, generate_spec

    spec = generate_spec(tmp_path, "gpt2", GREEDY)
    ctx = JobContext.from_spec(spec)
    worst = costliest_step(ctx)
    g = ctx.generation
    assert g.prompt_lengths[g.position(worst)[0]] == max(g.prompt_lengths)
    assert g.position(worst)[1] == g.max_new_tokens - 1
    shapes = {**ctx.state_structure(), **ctx.batch_structure()}
    first = step_cost(expected_structure(ctx, 1), shapes)
    cost = estimate_cost(spec)
    assert (cost.step_bytes, cost.step_flops) == step_cost(expected_structure(ctx, worst), shapes)
    assert cost.step_flops > first[1]
    with pytest.raises(BudgetExceeded, match="step_flops"):  # over the first step's cost
        estimate_cost(spec, Budget(step_flops=first[1]))


def test_checkpoint_bytes_count_unchanged_parameters_once(tmp_path: Path) -> None:
    from verde.protocol.graph.budget import checkpoint_bytes

    from .generate_jobs import GREEDY, generate_spec

    train = tiny_spec(steps=12)
    cost = estimate_cost(train)
    count = 12 // train.checkpoint_interval + 2
    assert checkpoint_bytes(train, cost) == count * cost.state_bytes  # every step new params
    spec = generate_spec(tmp_path, "gpt2", GREEDY, checkpoint_interval=4)
    cost = estimate_cost(spec)
    count = spec.steps // 4 + 2
    params = 4 * cost.parameters
    assert checkpoint_bytes(spec, cost) == count * (cost.state_bytes - params) + params
    assert checkpoint_bytes(spec, cost) < count * cost.state_bytes / 2
