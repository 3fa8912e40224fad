"""A provider that cheats according to a ``FaultPlan`` (for tests and the demo).

It is a real ``Provider`` with some hooks overridden, so everything it does not cheat on is
the honest code path. Compute faults are applied consistently — in the run, in replays from
checkpoints and in traced replays — the way a careful cheater would, so the dispute has to
go all the way down to catch them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from proofs import MerkleTree, SignedMessage, sign_message
from verde.protocol.faults.corrupt import OpCorrupter, flip_largest_sign
from verde.protocol.faults.plan import FaultPlan
from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers import kinds
from verde.protocol.peers.errors import RefusedQuery
from verde.protocol.peers.messages import Answer, Query, TensorBlob
from verde.protocol.provider.execution import StepGraph, expected_structure, run_step, trace_step
from verde.protocol.provider.provider import JobRecord, Provider
from verde.protocol.provider.result import result_context, result_payload
from verde.protocol.provider.tracing import GraphNode


class CheatingProvider(Provider):
    """A provider following ``plan`` (see ``verde.protocol.faults.plan`` for the catalogue)."""

    def __init__(self, *args: Any, plan: FaultPlan, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan
        self._resolved: dict[str, FaultPlan] = {}
        self._answered: dict[tuple[str, int, str], int] = {}

    def _plan(self, ctx: JobContext) -> FaultPlan:
        key = ctx.spec.job_id
        if key not in self._resolved:
            plan = self.plan.resolved(ctx.spec.steps)
            if plan.compute == "corrupt_op" and plan.step is not None:
                n_ops = len(expected_structure(ctx, plan.step)) - 1
                plan = dataclasses.replace(plan, node=(plan.node or 0) % max(1, n_ops))
            self._resolved[key] = plan
        return self._resolved[key]

    def _batch_for(self, ctx: JobContext, step: int) -> dict[str, torch.Tensor] | None:
        plan = self._plan(ctx)
        if plan.compute == "reorder_steps" and step in (plan.step, plan.step + 1):
            return ctx.batch(plan.step + 1 if step == plan.step else plan.step)
        if plan.compute == "wrong_data" and step == plan.step:
            return ctx.batch(ctx.spec.steps + step + 1)
        return None

    # --- computation ----------------------------------------------------------------------

    def initial_state(self, ctx: JobContext) -> dict[str, torch.Tensor]:
        state = super().initial_state(ctx)
        if self._plan(ctx).compute == "wrong_init":
            name = next(n for n in state if n.startswith(PARAM))
            state[name] = state[name].clone()
            flip_largest_sign(state[name])
        return state

    def compute_step(
        self, ctx: JobContext, state: Mapping[str, torch.Tensor], step: int
    ) -> dict[str, torch.Tensor]:
        plan = self._plan(ctx)
        if plan.compute == "skip_step" and step == plan.step:
            skipped = dict(state)
            skipped["rng"] = ctx.rng_state(step)
            return skipped
        if plan.compute == "corrupt_op" and step == plan.step:
            # Traced, so the op sequence (and the op the corrupter hits) is exactly the one
            # its replays will show: a consistent cheater.
            corrupter = OpCorrupter(plan.node or 0)
            new_state = dict(trace_step(ctx, state, step, interceptor=corrupter).state)
        else:
            new_state = run_step(ctx, state, step, batch=self._batch_for(ctx, step))
        if plan.compute == "corrupt_state" and step == plan.step:
            name = next(n for n in new_state if n.startswith(PARAM))
            tensor = new_state[name].clone()
            flip_largest_sign(tensor)
            new_state[name] = tensor
        return new_state

    def trace(self, ctx: JobContext, state: Mapping[str, torch.Tensor], step: int) -> StepGraph:
        plan = self._plan(ctx)
        interceptor = None
        if plan.compute == "corrupt_op" and step == plan.step:
            interceptor = OpCorrupter(plan.node or 0)
        graph = trace_step(ctx, state, step, batch=self._batch_for(ctx, step),
                           interceptor=interceptor)  # fmt: skip
        return self._edit_graph(graph, plan)

    def _edit_graph(self, graph: StepGraph, plan: FaultPlan) -> StepGraph:
        """Structural lies about the graph (the tree is rebuilt, so it is self-consistent)."""
        if plan.answer not in ("insert_node", "drop_node", "swap_nodes", "wrong_op"):
            return graph
        nodes = list(graph.nodes)
        k = min(plan.node or 0, len(nodes) - 3)
        if plan.answer == "insert_node":
            nodes.insert(k, nodes[k])
        elif plan.answer == "drop_node":
            del nodes[k]
        elif plan.answer == "swap_nodes":
            nodes[k], nodes[k + 1] = nodes[k + 1], nodes[k]
        else:
            n = nodes[k]
            nodes[k] = GraphNode(n.index, "aten.sub.Tensor" if n.op != "aten.sub.Tensor"
                                 else "aten.add.Tensor", n.args, n.meta, n.out)  # fmt: skip
        nodes = [GraphNode(i, n.op, n.args, n.meta, n.out) for i, n in enumerate(nodes)]
        tensors = dict(graph.tensors)
        return StepGraph(graph.step, nodes, graph.state, tensors,
                         MerkleTree([n.leaf_data() for n in nodes]))  # fmt: skip

    def sign_result(self, spec: JobSpec, tree: MerkleTree, roots: list[bytes]) -> SignedMessage:
        plan = self.plan
        if plan.compute != "wrong_final":
            return super().sign_result(spec, tree, roots)
        fake = bytes(b ^ 0xFF for b in roots[-1])
        payload = result_payload(spec.job_id, spec.steps, tree.root, fake,
                                 tree.proof(spec.steps))  # fmt: skip
        return sign_message(self.key, result_context(spec.job_id), payload)

    # --- answering ------------------------------------------------------------------------

    def answer(self, query: Query) -> Answer:
        record = self._record(query.job_id)
        plan = self._plan(record.ctx)
        if plan.answer == "refuse" and query.kind == plan.query:
            raise RefusedQuery(f"{self.name} refuses {query.kind}")
        return super().answer(query)

    def build_payload(
        self, record: JobRecord, query: Query
    ) -> tuple[dict[str, Any], dict[str, TensorBlob]]:
        payload, blobs = super().build_payload(record, query)
        plan = self._plan(record.ctx)
        if plan.answer == "lie_children" and query.kind == plan.query:
            payload["children"] = [bytes(32).hex(), payload["children"][1]]
        elif plan.answer == "wrong_graph_count" and query.kind == kinds.GRAPH_COMMIT:
            payload["n_nodes"] += 1
        elif plan.answer in ("wrong_input", "substitute_input") and query.kind == kinds.NODE_INPUTS:
            blobs, payload = _alter_input(blobs, payload, plan.answer == "substitute_input")
        return payload, blobs

    def sign_answer(self, query: Query, payload: dict[str, Any]) -> SignedMessage:
        plan = self._resolved.get(query.job_id, self.plan)
        key = (query.dispute_id, query.round, query.kind)
        seen = self._answered.get(key, 0)
        self._answered[key] = seen + 1
        if plan.answer == "equivocate" and seen >= 1 and query.kind == (plan.query or ""):
            payload = dict(payload)
            payload["children"] = list(reversed(payload.get("children", ["", ""])))
            payload["equivocation"] = seen
        return super().sign_answer(query, payload)


def _alter_input(
    blobs: dict[str, TensorBlob], payload: dict[str, Any], claim_new_digest: bool
) -> tuple[dict[str, TensorBlob], dict[str, Any]]:
    """Change one float input tensor; keep or update its claimed digest."""
    for entry in payload.get("inputs", []):
        from verde.protocol.provider.tracing import ref_key

        key = ref_key(entry["ref"])
        blob = blobs.get(key)
        if blob is None or blob.dtype != "float32":
            continue
        tensor = blob.to_tensor().clone()
        flip_largest_sign(tensor)
        new_blob = TensorBlob.from_tensor(tensor)
        blobs = {**blobs, key: new_blob}
        if claim_new_digest:
            entry["digest"] = new_blob.digest_hex()
        return blobs, payload
    return blobs, payload



