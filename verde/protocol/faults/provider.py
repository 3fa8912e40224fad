"""A provider that cheats according to a ``FaultPlan`` (for tests and the demo).

It is a real ``Provider`` with some hooks overridden, so everything it does not cheat on is
the honest code path. Compute faults are applied consistently — in the run, in replays from
checkpoints and in traced replays — the way a careful cheater would, so the dispute has to
go all the way down to catch them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from proofs import MerkleTree, SignedMessage, sign_message
from repops.dispatch.encoding import RefKey
from verde.protocol.faults.corrupt import CorruptingTracer, flip_largest_sign
from verde.protocol.faults.generation import (
    WEIGHT_FAULTS,
    SampleSwappingTracer,
    altered_weights,
    changed_prompt_batch,
    check_generate_fault,
    claiming_tracer,
    committing_weights_of,
    fault_position,
    truncated,
    with_weights_of,
)
from verde.protocol.faults.plan import GENERATE_FAULTS, FaultPlan
from verde.protocol.graph.execution import StepGraph, expected_structure, run_step, trace_step
from verde.protocol.graph.nodes import node_leaf, ref_name
from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers import payloads as p
from verde.protocol.peers.errors import RefusedQuery
from verde.protocol.peers.messages import Answer, Query, TensorBlob
from verde.protocol.peers.result import result_context, result_payload
from verde.protocol.provider.generation_engine import (
    decode_batches,
    generation_states,
    parameters_of,
)
from verde.protocol.provider.provider import Provider
from verde.protocol.provider.record import JobRecord


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
        if plan.step is None:  # resolved plans always name their step
            return None
        if plan.compute == "reorder_steps" and step in (plan.step, plan.step + 1):
            return ctx.batch(plan.step + 1 if step == plan.step else plan.step)
        if plan.compute == "wrong_data" and step == plan.step:
            return ctx.batch(ctx.spec.steps + step + 1)
        if plan.compute == "changed_prompt":
            prompt, _ = fault_position(ctx, plan.step, plan.compute)
            if step == ctx.generation.step_of(prompt, 0):
                return changed_prompt_batch(ctx, step)
        return None

    # --- computation ----------------------------------------------------------------------

    def step_states(self, ctx: JobContext, state: Mapping[str, torch.Tensor],
                    ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        plan = self._plan(ctx)
        if plan.compute in GENERATE_FAULTS:
            check_generate_fault(ctx, plan.compute)
        if plan.compute == "tampered_cache":
            target = fault_position(ctx, plan.step or 1, plan.compute)

            def tamper(decoder: Any, row: int, prompt: int, position: int) -> None:
                if (prompt, position) == target:
                    decoder.tamper(row)

            decoded = decode_batches(ctx, parameters_of(state), batch_size=self.generate_batch,
                                     use_cache=True, cache_hook=tamper)
            yield from generation_states(ctx, state, decoded)
        elif ctx.spec.kind == "generate" and plan.compute not in (None, "wrong_final"):
            yield from self.stepwise_states(ctx, state)  # the faults below act per step
        else:
            yield from super().step_states(ctx, state)

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
        if plan.compute in GENERATE_FAULTS:
            return self._generate_fault_step(ctx, state, step, plan)
        if plan.compute == "skip_step" and step == plan.step:
            skipped = dict(state)
            skipped["rng"] = ctx.rng_state(step)
            return skipped
        if plan.compute == "corrupt_op" and step == plan.step:
            # Traced, so the op sequence (and the op the corrupter hits) is exactly the one
            # its replays will show: a consistent cheater.
            corrupter = CorruptingTracer(plan.node or 0, op=plan.op)
            new_state = dict(trace_step(ctx, state, step, tracer=corrupter).state)
        else:
            new_state = run_step(ctx, state, step, batch=self._batch_for(ctx, step))
        if plan.compute == "corrupt_state" and step == plan.step:
            name = next(n for n in new_state if n.startswith(PARAM))
            tensor = new_state[name].clone()
            flip_largest_sign(tensor)
            new_state[name] = tensor
        return new_state

    def _generate_fault_step(self, ctx: JobContext, state: Mapping[str, torch.Tensor],
                             step: int, plan: FaultPlan) -> dict[str, torch.Tensor]:
        fault, fault_step = plan.compute or "", plan.step or 1
        if fault in WEIGHT_FAULTS:
            altered = altered_weights(ctx, state, fault, step, fault_step)
            if altered is not None:
                return with_weights_of(run_step(ctx, altered, step), state)
        swapper = self._sample_swapper(ctx, step, plan)
        if swapper is not None:
            return dict(trace_step(ctx, state, step, tracer=swapper).state)
        new_state = run_step(ctx, state, step, batch=self._batch_for(ctx, step))
        if fault == "truncate" and step == fault_step:  # no stop token to claim: a plain lie
            return truncated(ctx, new_state, step)
        return new_state

    @staticmethod
    def _sample_swapper(ctx: JobContext, step: int, plan: FaultPlan,
                        keep: bool | frozenset[RefKey] = False) -> SampleSwappingTracer | None:
        """The tracer that alters the sampled token of the fault step (a wrong sample, or a
        stop token for truncation), or None."""
        if step != plan.step:
            return None
        if plan.compute == "wrong_sample":
            return SampleSwappingTracer(ctx.vocab_size(), keep)
        stops = ctx.generation.stop_tokens if ctx.spec.kind == "generate" else ()
        if plan.compute == "truncate" and stops:
            return SampleSwappingTracer(ctx.vocab_size(), keep, to=stops[0])
        return None

    def trace(self, ctx: JobContext, state: Mapping[str, torch.Tensor], step: int,
              keep: bool | frozenset[RefKey] = False) -> StepGraph:
        plan = self._plan(ctx)
        tracer = None
        if plan.compute == "corrupt_op" and step == plan.step:
            tracer = CorruptingTracer(plan.node or 0, keep, plan.op)
        elif plan.compute in ("wrong_sample", "truncate"):
            tracer = self._sample_swapper(ctx, step, plan, keep)
        elif plan.compute in WEIGHT_FAULTS:
            altered = altered_weights(ctx, state, plan.compute or "", step, plan.step or 1)
            if altered is not None:
                graph = trace_step(ctx, altered, step, keep=keep,
                                   tracer=claiming_tracer(altered, state, keep))
                return committing_weights_of(graph, state)
        graph = trace_step(ctx, state, step, batch=self._batch_for(ctx, step), keep=keep,
                           tracer=tracer)  # fmt: skip
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
            other = "aten.sub.Tensor" if n.op != "aten.sub.Tensor" else "aten.add.Tensor"
            nodes[k] = dataclasses.replace(n, op=other)
        nodes = [dataclasses.replace(n, index=i) for i, n in enumerate(nodes)]
        return StepGraph(graph.step, nodes, graph.state,
                         MerkleTree([node_leaf(n) for n in nodes]), graph.tracer)

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
    ) -> tuple[p.AnswerPayload, dict[str, TensorBlob]]:
        answer, blobs = super().build_payload(record, query)
        plan = self._plan(record.ctx)
        lie = plan.answer == "lie_children" and query.kind == plan.query
        if lie and isinstance(answer, p.StepChildrenAnswer | p.GraphChildrenAnswer):
            answer = dataclasses.replace(answer, children=(bytes(32), answer.children[1]))
        elif plan.answer == "wrong_graph_count" and isinstance(answer, p.GraphCommitAnswer):
            answer = dataclasses.replace(answer, n_nodes=answer.n_nodes + 1)
        elif plan.answer in ("wrong_input", "substitute_input") and isinstance(
                answer, p.NodeInputsAnswer):
            answer, blobs = _alter_input(answer, blobs, plan.answer == "substitute_input")
        return answer, blobs

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


def _alter_input(answer: p.NodeInputsAnswer, blobs: dict[str, TensorBlob],
                 claim_new_digest: bool) -> tuple[p.NodeInputsAnswer, dict[str, TensorBlob]]:
    """Change one float input tensor; keep or update its claimed digest."""
    for i, entry in enumerate(answer.inputs):
        key = ref_name(entry.ref)
        blob = blobs.get(key)
        if blob is None or blob.dtype != "float32":
            continue
        tensor = blob.to_tensor().clone()
        flip_largest_sign(tensor)
        new_blob = TensorBlob.from_tensor(tensor)
        blobs = {**blobs, key: new_blob}
        if claim_new_digest and isinstance(entry, p.NodeOutputInput | p.StateInput):
            digest = bytes.fromhex(new_blob.digest_hex())
            inputs = list(answer.inputs)
            inputs[i] = dataclasses.replace(entry, digest=digest)
            answer = dataclasses.replace(answer, inputs=tuple(inputs))
        return answer, blobs
    return answer, blobs
