"""How a cheating provider fakes a generate job (``verde.protocol.jobs.generation``).

The compute faults of generation, each the cheap thing a real provider could be tempted to do:

* ``quantised_model`` -- decodes with its weights rounded to bfloat16 (a quantised model) while
  committing the job's weights -- in its traced replays too, whose leaves claim the job's
  weights' digests (a consistent cheater: the dispute reaches the first op that used one);
* ``cheaper_model``  -- from position ``t`` of the fault step on, decodes with the last
  transformer block's matrices zeroed (a shallower, cheaper model) for every prompt, claimed
  the same way;
* ``wrong_sample``   -- the right logits, another token: the sampled id plus one (mod V), in its
  run and in its traced replays (a consistent cheater: the dispute must reach the sampler);
* ``truncate``       -- stops the fault step's prompt at its position: the sampler's result is
  the job's first stop token, in its run and its replays (without stop tokens in the job, it
  writes pad and done into its state, and its replays cannot agree with that);
* ``changed_prompt`` -- decodes the fault step's prompt with its first token changed;
* ``tampered_cache`` -- decodes with the key/value cache (Hugging Face models), one cached key
  of the fault step's prompt altered before that position.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from typing import Any

import torch

from proofs.digest import tensor_digest
from proofs.merkle import MerkleTree
from proofs.state import StateCommitment
from repops import Tracer
from repops.dispatch.encoding import RefKey
from verde.protocol.faults.corrupt import CorruptingTracer
from verde.protocol.graph.execution import StepGraph, graph_tracer_options
from verde.protocol.graph.nodes import node_leaf
from verde.protocol.jobs.context import BATCH, PARAM, JobContext
from verde.protocol.jobs.generation import LOGITS, done_entry, tokens_entry

#: Faults that change the weights a step runs with (the committed weights stay the job's).
WEIGHT_FAULTS = ("quantised_model", "cheaper_model")
_LAYER = re.compile(r"\.(\d+)\.")


def check_generate_fault(ctx: JobContext, fault: str) -> None:
    """A generation fault needs a generate job (and the cache fault a cached decoder)."""
    if ctx.spec.kind != "generate":
        raise ValueError(f"fault {fault} cheats on generate jobs; job "
                         f"{ctx.spec.job_id[:16]} is a {ctx.spec.kind} job")
    if fault == "tampered_cache" and (ctx.spec.program != "hf" or ctx.spec.backend != "repops"
                                      or ctx.generation.max_new_tokens < 2):
        raise ValueError("fault tampered_cache needs a Hugging Face model (a key/value cache) "
                         "on backend repops and max_new_tokens >= 2")


def fault_position(ctx: JobContext, step: int, fault: str) -> tuple[int, int]:
    """(prompt, position) the fault hits: the fault step's, at position 0 for a changed prompt
    and at least 1 for a tampered cache (there is no cache before the prefill)."""
    prompt, position = ctx.generation.position(step)
    if fault == "changed_prompt":
        return prompt, 0
    if fault == "tampered_cache":
        return prompt, max(1, position)
    return prompt, position


def altered_weights(ctx: JobContext, state: Mapping[str, torch.Tensor], fault: str,
                    step: int, fault_step: int) -> dict[str, torch.Tensor] | None:
    """The state with the weights a weight fault decodes ``step`` with, or None when the step
    runs with the job's own."""
    if fault == "quantised_model":
        return {k: (v.to(torch.bfloat16).to(torch.float32) if k.startswith(PARAM) else v)
                for k, v in state.items()}
    if fault == "cheaper_model":
        _, first = fault_position(ctx, fault_step, fault)
        if ctx.generation.position(step)[1] < first:
            return None
        layers = [int(m.group(1)) for k in state if k.startswith(PARAM)
                  for m in [_LAYER.search(k)] if m]
        if not layers:
            raise ValueError("fault cheaper_model: the model has no numbered blocks")
        last = f".{max(layers)}."
        return {k: (torch.zeros_like(v) if k.startswith(PARAM) and last in k and v.dim() == 2
                    else v) for k, v in state.items()}
    return None


def with_weights_of(new_state: Mapping[str, torch.Tensor], honest: Mapping[str, torch.Tensor],
                    ) -> dict[str, torch.Tensor]:
    """``new_state`` committing the job's weights (those of ``honest``) again."""
    return {k: (honest[k] if k.startswith(PARAM) else v) for k, v in new_state.items()}


def truncated(ctx: JobContext, state: Mapping[str, torch.Tensor], step: int,
              ) -> dict[str, torch.Tensor]:
    """The state of ``step`` with its prompt stopped there: pad written, done, zero logits."""
    g = ctx.generation
    prompt, position = g.position(step)
    out = dict(state)
    tokens = state[tokens_entry(prompt)].clone()
    tokens[g.prompt_lengths[prompt] + position] = g.pad_token
    out[tokens_entry(prompt)] = tokens
    out[done_entry(prompt)] = torch.ones((), dtype=torch.bool)
    out[LOGITS] = torch.zeros_like(state[LOGITS])
    return out


def changed_prompt_batch(ctx: JobContext, step: int) -> dict[str, torch.Tensor]:
    """The batch of ``step`` with the prompt's first token changed (to the next id)."""
    batch = ctx.batch(step)
    key = BATCH + ctx.program.prompt_field
    ids = batch[key].clone()
    ids[0, 0] = (ids[0, 0] + 1) % ctx.vocab_size()
    return {**batch, key: ids}


def _storage_key(t: torch.Tensor) -> tuple[Any, ...]:
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)


def claiming_tracer(altered: Mapping[str, torch.Tensor], honest: Mapping[str, torch.Tensor],
                    keep: bool | Collection[RefKey] = False) -> Tracer:
    """The protocol's tracer, except that the altered weights' leaves are recorded with the
    digests of the job's weights (``honest``): the graph claims the agreed inputs."""
    claims = {_storage_key(altered[k]): tensor_digest(honest[k]) for k in altered
              if k.startswith(PARAM) and altered[k] is not honest[k]}

    def digest(t: torch.Tensor) -> bytes:
        return claims.get(_storage_key(t)) or tensor_digest(t)

    return Tracer(**{**graph_tracer_options(keep), "digest_fn": digest})


def committing_weights_of(graph: StepGraph, honest: Mapping[str, torch.Tensor]) -> StepGraph:
    """``graph`` ending in the state that commits the job's weights (as the cheater's run
    committed it), so its last node agrees with its step commitment."""
    state = with_weights_of(graph.state, honest)
    root = StateCommitment.from_tensors(state).root
    nodes = [*graph.nodes[:-1], dataclasses.replace(graph.nodes[-1], output_digests=(root,))]
    return StepGraph(graph.step, nodes, state, MerkleTree([node_leaf(n) for n in nodes]),
                     graph.tracer)


class SampleSwappingTracer(CorruptingTracer):
    """The protocol's tracer, except that the sampled token (the int64 scalar an ``argmax`` or
    ``gather`` of the sampler produces) becomes ``to`` (default: the next id), before the step
    goes on with it."""

    def __init__(self, vocab: int, keep: bool | Collection[RefKey] = False,
                 to: int | None = None) -> None:
        super().__init__(1 << 62, keep)
        self.vocab = vocab
        self.to = to

    def record(self, op: str, tree: dict[str, Any], outputs: list[torch.Tensor],
               scalar: Any = None) -> Any:
        if (op in ("aten.argmax.default", "aten.gather.default") and outputs
                and outputs[0].dtype == torch.int64 and outputs[0].numel() == 1
                and outputs[0].device.type != "meta"):
            with torch.no_grad():
                if self.to is None:
                    outputs[0].copy_((outputs[0] + 1) % self.vocab)
                else:
                    outputs[0].fill_(self.to)
            self.hit = len(self.nodes)
        return super().record(op, tree, outputs, scalar)
