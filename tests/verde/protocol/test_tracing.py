"""Step graphs: the real trace equals the arbiter's meta replay, and every node re-executes."""

from __future__ import annotations

import pytest
import torch

from proofs.digest import tensor_digest
from proofs.state import StateCommitment
from verde.protocol.graph.errors import TraceError
from verde.protocol.graph.execution import (
    expected_structure,
    graph_tracer,
    recompute_node,
    run_step,
    trace_step,
)
from verde.protocol.graph.nodes import COMMIT_OP, NODE_DOMAIN, input_refs, node_leaf, ref_name
from verde.protocol.jobs.context import JobContext

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
    root = StateCommitment.from_tensors(run_step(ctx, state, 2)).root
    assert graph.nodes[-1].op == COMMIT_OP
    assert graph.nodes[-1].output_digests == (root,)


def _inputs(ctx: JobContext, state: dict, graph_values: object, node: object) -> dict:
    leaves = {**ctx.prepare_leaves(state), **ctx.batch(1)}
    out = {}
    for ref in input_refs(node):  # type: ignore[arg-type]
        if ref[0] == "leaf":
            out[ref] = leaves[ref[1]]
        else:
            out[ref] = graph_values.value(ref)  # type: ignore[attr-defined]
    return out


def test_every_node_reexecutes_to_its_recorded_digest() -> None:
    ctx = JobContext.from_spec(tiny_spec())
    state = ctx.initial_state()
    graph = trace_step(ctx, state, 1, keep=True)
    for node in graph.nodes[:-1]:
        inputs = _inputs(ctx, state, graph, node)
        assert recompute_node("repops", node.op, node.args, inputs) == node.output_digests, \
            node.op
    # and a changed input changes the recomputed digest (the check can fail)
    node = next(n for n in graph.nodes if n.op == "aten.addmm.default")
    inputs = {ref: t.detach().clone() + 1 for ref, t in _inputs(ctx, state, graph, node).items()}
    assert recompute_node("repops", node.op, node.args, inputs) != node.output_digests


def test_only_the_values_asked_for_are_kept_and_they_equal_a_full_keep() -> None:
    ctx = JobContext.from_spec(tiny_spec())
    state = ctx.initial_state()
    full = trace_step(ctx, state, 1, keep=True)
    digests_only = trace_step(ctx, state, 1)
    assert [node_leaf(n) for n in full.nodes] == [node_leaf(n) for n in digests_only.nodes]
    assert digests_only.root == full.root
    node = next(n for n in full.nodes if n.op == "aten.addmm.default")
    wanted = [r for r in input_refs(node) if r[0] == "node"]
    some = trace_step(ctx, state, 1, keep=wanted)
    for ref in wanted:
        assert torch.equal(some.value(ref), full.value(ref))
    with pytest.raises(KeyError):
        digests_only.value(wanted[0])


def test_leaves_are_domain_separated_canonical_json_and_refs_have_names() -> None:
    ctx = JobContext.from_spec(tiny_spec())
    graph = trace_step(ctx, ctx.initial_state(), 1)
    leaf = node_leaf(graph.nodes[0])
    assert leaf.startswith(NODE_DOMAIN)
    assert ref_name(("node", 3, 0)) == "node:3:0"
    assert ref_name(("leaf", "param/0.weight")) == "leaf:param/0.weight"
    commit = graph.nodes[-1]
    assert input_refs(commit)  # every state entry but the RNG names the node that made it
    assert all(r[0] in ("node", "leaf") for r in input_refs(commit))


def test_the_protocol_tracer_refuses_untracked_tensors_and_python_values() -> None:
    tracer = graph_tracer()
    a = torch.ones(3)
    tracer.register_leaves({"a": a})
    constant = torch.ones(3)
    import repops

    with pytest.raises(repops.UntracedTensorError, match="captured"), \
            repops.reproducible(tracer=tracer):
        torch.add(a, constant)
    tracer = graph_tracer()
    tracer.register_leaves({"a": a})
    with pytest.raises(repops.ScalarResultError, match="item"), \
            repops.reproducible(tracer=tracer):
        (a * 2).sum().item()


def test_a_program_reading_a_captured_constant_cannot_be_traced() -> None:
    from verde.protocol.jobs.builtin import MLP
    from verde.protocol.jobs.registry import register_program

    class Captures(MLP):
        name = "test-captures-constant"
        offset = torch.ones(10)

        def outputs(self, module, batch):  # type: ignore[no-untyped-def]
            return module(batch["x"]) + self.offset

    register_program(Captures(), replace=True)
    ctx = JobContext.from_spec(tiny_spec(program="test-captures-constant"))
    with pytest.raises(TraceError, match="captured"):
        trace_step(ctx, ctx.initial_state(), 1)
    with pytest.raises(TraceError, match="captured"):
        expected_structure(ctx, 1)


def test_tensor_digests_of_node_outputs_are_proofs_digests() -> None:
    ctx = JobContext.from_spec(tiny_spec())
    graph = trace_step(ctx, ctx.initial_state(), 1, keep=True)
    node = graph.nodes[1]
    assert node.output_digests[0] == tensor_digest(graph.value(("node", 1, 0)))
