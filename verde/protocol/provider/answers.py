"""How an honest provider answers each dispute query: one builder per kind, typed answers.

Each builder returns ``(answer, blobs)``: the typed answer (``verde.protocol.peers.payloads``)
whose JSON gets signed, and the tensors sent beside it. A tensor is always accompanied, inside
the signed answer, by the digest it is claimed to have and by the Merkle proof that ties that
digest to something the provider committed to earlier: a graph node (leaf of the step's graph
tree), a state entry (leaf of the state commitment of step ``s - 1``) or a data sample (leaf of
the dataset tree). The arbiter checks each of these (Verde, Arun et al. 2025).

Graph answers need only digests, so the provider traces a step keeping no values; a
``node_inputs`` answer needs the values of one node's inputs, so the provider replays the step
once more keeping just those (the replay is deterministic: it is the same graph).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch

from proofs import MalformedInput
from proofs.digest import tensor_digest
from proofs.state import StateCommitment
from repops.dispatch.encoding import RefKey
from verde.protocol.graph.execution import StepGraph
from verde.protocol.graph.nodes import COMMIT_OP, input_refs, ref_name
from verde.protocol.jobs.context import BATCH
from verde.protocol.peers.messages import TensorBlob
from verde.protocol.peers.payloads import (
    AnswerPayload,
    BatchInput,
    GraphChildrenAnswer,
    GraphChildrenQuery,
    GraphCommitAnswer,
    GraphCommitQuery,
    GraphLeavesAnswer,
    GraphLeavesQuery,
    InputEntry,
    NodeInputsAnswer,
    NodeInputsQuery,
    NodeOutputInput,
    ProvenNode,
    QueryParams,
    SampleEntry,
    StateInput,
    StepChildrenAnswer,
    StepChildrenQuery,
    StepLeaf,
    StepLeavesAnswer,
    StepLeavesQuery,
)
from verde.protocol.provider.errors import UnknownQueryError
from verde.protocol.provider.record import JobRecord

if TYPE_CHECKING:
    from proofs import MerkleTree, NodePosition


class Provider(Protocol):
    """What the builders need from a provider: replays of the job's steps and states."""

    def graph(self, record: JobRecord, step: int) -> StepGraph: ...

    def graph_values(self, record: JobRecord, step: int, refs: Sequence[RefKey]) -> StepGraph: ...

    def state_at(self, record: JobRecord, step: int) -> dict[str, torch.Tensor]: ...

    def commitment_at(self, record: JobRecord, step: int) -> StateCommitment: ...

Built = tuple[AnswerPayload, dict[str, TensorBlob]]


def _children(tree: MerkleTree, position: NodePosition) -> tuple[bytes, bytes]:
    try:
        position.check_in_tree(tree.n_leaves)
        return tree.children(position)
    except MalformedInput as exc:
        raise UnknownQueryError(f"bad position in query: {exc}") from exc


def _step(step: int, record: JobRecord) -> int:
    if not 1 <= step <= record.spec.steps:
        raise UnknownQueryError(f"no step {step} in a job of {record.spec.steps} steps")
    return step


def _in_range(indices: tuple[int, ...], n: int, what: str) -> tuple[int, ...]:
    bad = [i for i in indices if i >= n]
    if bad:
        raise UnknownQueryError(f"{what} {bad} are out of range (there are {n})")
    return indices


def step_children(provider: Provider, record: JobRecord, q: StepChildrenQuery) -> Built:
    return StepChildrenAnswer(q.position, _children(record.tree, q.position)), {}


def step_leaves(provider: Provider, record: JobRecord, q: StepLeavesQuery) -> Built:
    indices = _in_range(q.indices, record.tree.n_leaves, "step leaves")
    leaves = tuple(StepLeaf(i, record.step_roots[i], record.tree.proof(i)) for i in indices)
    return StepLeavesAnswer(leaves), {}


def graph_commit(provider: Provider, record: JobRecord, q: GraphCommitQuery) -> Built:
    graph = provider.graph(record, _step(q.step, record))
    last = len(graph.nodes) - 1
    final = ProvenNode(graph.nodes[last], graph.tree.proof(last))
    return GraphCommitAnswer(q.step, graph.root, len(graph.nodes), final), {}


def graph_children(provider: Provider, record: JobRecord, q: GraphChildrenQuery) -> Built:
    graph = provider.graph(record, _step(q.step, record))
    return GraphChildrenAnswer(q.step, q.position, _children(graph.tree, q.position)), {}


def graph_leaves(provider: Provider, record: JobRecord, q: GraphLeavesQuery) -> Built:
    graph = provider.graph(record, _step(q.step, record))
    indices = _in_range(q.indices, len(graph.nodes), "graph nodes")
    return GraphLeavesAnswer(q.step, tuple(ProvenNode(graph.nodes[i], graph.tree.proof(i))
                                           for i in indices)), {}


def node_inputs(provider: Provider, record: JobRecord, q: NodeInputsQuery) -> Built:
    step = _step(q.step, record)
    graph = provider.graph(record, step)
    if q.node >= len(graph.nodes):
        raise UnknownQueryError(f"no node {q.node} in a graph of {len(graph.nodes)} nodes")
    node = graph.nodes[q.node]
    refs = input_refs(node)
    need_tensors = node.op != COMMIT_OP
    produced = [r for r in refs if r[0] == "node"]
    values = provider.graph_values(record, step, produced) if need_tensors and produced else None
    entries: list[InputEntry] = []
    blobs: dict[str, TensorBlob] = {}
    for ref in refs:
        if ref[0] == "node":
            entries.append(_node_output(graph.nodes, graph.tree, ref, values, blobs))
        elif str(ref[1]).startswith(BATCH):
            entries.append(_batch_field(record, step, ref, blobs))
        else:
            entries.append(_state_entry(provider, record, step, ref, need_tensors=need_tensors,
                                        blobs=blobs))
    return NodeInputsAnswer(step, q.node, tuple(entries)), blobs


def _node_output(nodes: list[Any], tree: MerkleTree, ref: RefKey, values: Any,
                 blobs: dict[str, TensorBlob]) -> NodeOutputInput:
    i = ref[1]
    if not 0 <= i < len(nodes):
        raise UnknownQueryError(f"an input references node {i}, which the graph lacks")
    digest = None
    if values is not None:
        tensor = values.value(ref)
        digest = tensor_digest(tensor)
        blobs[ref_name(ref)] = TensorBlob.from_tensor(tensor)
    return NodeOutputInput(ref, ProvenNode(nodes[i], tree.proof(i)), digest)


def _batch_field(record: JobRecord, step: int, ref: RefKey,
                 blobs: dict[str, TensorBlob]) -> BatchInput:
    field = str(ref[1])[len(BATCH):]
    dataset = record.ctx.dataset
    samples = []
    for pos, index in enumerate(record.ctx.batch_indices(step)):
        sample = dataset.sample(index)
        samples.append(SampleEntry(index, {f: tensor_digest(v) for f, v in sample.items()},
                                   dataset.proof(index)))
        blobs[f"sample/{pos}/{field}"] = TensorBlob.from_tensor(torch.from_numpy(sample[field]))
    return BatchInput(ref, field, tuple(samples))


def _state_entry(provider: Provider, record: JobRecord, step: int, ref: RefKey, *,
                 need_tensors: bool, blobs: dict[str, TensorBlob]) -> StateInput:
    name = str(ref[1])
    commitment = provider.commitment_at(record, step - 1)
    if name not in commitment.names:
        raise UnknownQueryError(f"an input references state entry {name!r}, which state "
                                f"{step - 1} lacks")
    if need_tensors:
        blobs[ref_name(ref)] = TensorBlob.from_tensor(provider.state_at(record, step - 1)[name])
    return StateInput(ref, name, commitment.digest(name), commitment.proof(name))


ANSWER_BUILDERS: dict[str, Callable[[Provider, JobRecord, Any], Built]] = {
    StepChildrenQuery.KIND: step_children,
    StepLeavesQuery.KIND: step_leaves,
    GraphCommitQuery.KIND: graph_commit,
    GraphChildrenQuery.KIND: graph_children,
    GraphLeavesQuery.KIND: graph_leaves,
    NodeInputsQuery.KIND: node_inputs,
}


def build_answer(provider: Provider, record: JobRecord, query: QueryParams) -> Built:
    """The honest answer to one typed query (see the builders above)."""
    return ANSWER_BUILDERS[query.KIND](provider, record, query)
