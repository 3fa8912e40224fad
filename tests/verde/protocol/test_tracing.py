"""Step graphs: the real trace equals the arbiter's meta replay, and every node re-executes."""

from __future__ import annotations

import pytest
import torch

from proofs.digest import tensor_digest
from proofs.state import StateCommitment
from verde.protocol.jobs.context import JobContext
from verde.protocol.provider.errors import TraceError
from verde.protocol.provider.execution import (
    execution_context,
    expected_structure,
    run_step,
    trace_step,
)
from verde.protocol.provider.tracing import StepTracer, execute_node, ref_key, tensor_refs

from .conftest import tiny_spec


@pytest.mark.parametrize(
    ("kind", "optimizer"), [("train", {"name": "adam", "lr": 0.01}),
                            ("train", {"name": "sgd", "lr": 0.1, "momentum": 0.9}),
                            ("infer", {})],
)
def test_trace_matches_meta_replay_and_plain_run(kind: str, optimizer: dict) -> None:
    ctx = JobContext.from_spec(tiny_spec(kind=kind, optimizer=optimizer))
    state = run_step(ctx, ctx.initial_state(), 1)
    graph = trace_step(ctx, state, 2)
    assert [n.structure() for n in graph.nodes] == expected_structure(ctx, 2)
    assert graph.nodes[-1].out == [StateCommitment.from_tensors(run_step(ctx, state, 2)).root.hex()]


def test_every_node_reexecutes_to_its_recorded_digest() -> None:
    ctx = JobContext.from_spec(tiny_spec())
    state = ctx.initial_state()
    graph = trace_step(ctx, state, 1)
    leaves = {**ctx.prepare_leaves(state), **ctx.batch(1)}
    for node in graph.nodes[:-1]:
        inputs = {}
        for ref in tensor_refs(node.args):
            t = leaves[ref["leaf"]] if "leaf" in ref else graph.tensors[(ref["node"], ref["out"])]
            inputs[ref_key(ref)] = t.detach().contiguous().clone()
        with execution_context("repops"):
            outputs = execute_node(node.op, node.args, inputs)
        digests = [tensor_digest(o).hex() if isinstance(o, torch.Tensor) else "" for o in outputs]
        assert digests == node.out, node.op
    # and a changed input changes the recomputed digest (the check can fail)
    node = next(n for n in graph.nodes if n.op == "aten.addmm.default")
    inputs = {}
    for ref in tensor_refs(node.args):
        t = leaves[ref["leaf"]] if "leaf" in ref else graph.tensors[(ref["node"], ref["out"])]
        inputs[ref_key(ref)] = t.detach().clone() + 1
    with execution_context("repops"):
        assert tensor_digest(execute_node(node.op, node.args, inputs)[0]).hex() != node.out[0]


def test_tracer_refuses_untracked_tensors_and_python_values() -> None:
    tracer = StepTracer()
    a = torch.ones(3)
    tracer.register_leaves({"a": a})
    constant = torch.ones(3)
    with pytest.raises(TraceError, match="captured constant"), tracer:
        torch.add(a, constant)
    tracer = StepTracer()
    tracer.register_leaves({"a": a})
    with pytest.raises(TraceError, match="Python"), tracer:
        (a * 2).sum().item()


def test_inplace_on_alias_makes_the_alias_stale() -> None:
    tracer = StepTracer()
    a = torch.ones(4)
    tracer.register_leaves({"a": a})
    with pytest.raises(TraceError, match="in-place"), tracer:
        b = a * 1
        view = b[:2]
        b.add_(1)
        torch.neg(view)
