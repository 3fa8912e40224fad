"""How an honest provider answers each dispute query (payload builders, one per kind).

Each builder returns ``(payload, blobs)``: the JSON payload that gets signed and the tensors
sent beside it. Tensors are always accompanied, inside the signed payload, by the digest they
are claimed to have and by the Merkle proof that ties that digest to something the provider
committed to earlier: a graph node (leaf of the step's graph tree), a state entry (leaf of the
state commitment of step ``s - 1``) or a data sample (leaf of the dataset tree). The arbiter
checks each of these (Verde, Arun et al. 2025).

``node_inputs`` payload: ``{step, node, inputs: [entry...]}``, one entry per distinct tensor
reference of the node, in first-appearance order:

* ``{ref, source: "node", node: <node json>, proof}`` plus ``digest`` when a tensor is sent
  (blob key = ``ref_key(ref)``);
* ``{ref, source: "state", name, digest, proof}`` (blob key = ``ref_key(ref)``);
* ``{ref, source: "batch", field, samples: [{index, digests: {field: hex}, proof}]}`` with one
  blob per sample position ``sample/<position>/<field>``.

For the ``verde.commit_state`` node only digests are needed, so no tensors are sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from proofs import NodePosition
from proofs.digest import tensor_digest
from verde.protocol.jobs.context import BATCH
from verde.protocol.peers import kinds
from verde.protocol.peers.messages import TensorBlob
from verde.protocol.provider.errors import UnknownQueryError
from verde.protocol.provider.tracing import COMMIT_OP, GraphNode, ref_key, tensor_refs

if TYPE_CHECKING:
    from verde.protocol.provider.provider import JobRecord, Provider

Payload = tuple[dict[str, Any], dict[str, TensorBlob]]


def _position(params: Mapping[str, Any], n_leaves: int) -> NodePosition:
    try:
        position = NodePosition.from_json(params["position"])
        position.check_in_tree(n_leaves)
    except (KeyError, ValueError) as exc:
        raise UnknownQueryError(f"bad position in query: {exc}") from exc
    return position


def _step(params: Mapping[str, Any], record: JobRecord) -> int:
    step = params.get("step")
    if not isinstance(step, int) or not 1 <= step <= record.spec.steps:
        raise UnknownQueryError(f"bad step {step!r} in query")
    return step


def _indices(params: Mapping[str, Any], n: int) -> list[int]:
    indices = params.get("indices")
    if not isinstance(indices, list) or not all(isinstance(i, int) and 0 <= i < n for i in indices):
        raise UnknownQueryError(f"bad indices {indices!r} in query")
    return indices


def step_children(provider: Provider, record: JobRecord, params: Mapping[str, Any]) -> Payload:
    position = _position(params, record.tree.n_leaves)
    left, right = record.tree.children(position)
    return {"position": position.to_json(), "children": [left.hex(), right.hex()]}, {}


def step_leaves(provider: Provider, record: JobRecord, params: Mapping[str, Any]) -> Payload:
    leaves = [
        {"index": i, "data": record.step_roots[i].hex(), "proof": record.tree.proof(i).to_json()}
        for i in _indices(params, record.tree.n_leaves)
    ]
    return {"leaves": leaves}, {}


def graph_commit(provider: Provider, record: JobRecord, params: Mapping[str, Any]) -> Payload:
    step = _step(params, record)
    graph = provider.graph(record, step)
    last = len(graph.nodes) - 1
    final = {"node": graph.nodes[last].to_json(), "proof": graph.tree.proof(last).to_json()}
    payload = {"step": step, "root": graph.root.hex(), "n_nodes": len(graph.nodes),
               "final": final}  # fmt: skip
    return payload, {}


def graph_children(provider: Provider, record: JobRecord, params: Mapping[str, Any]) -> Payload:
    step = _step(params, record)
    graph = provider.graph(record, step)
    position = _position(params, graph.tree.n_leaves)
    left, right = graph.tree.children(position)
    return {"step": step, "position": position.to_json(),
            "children": [left.hex(), right.hex()]}, {}  # fmt: skip


def graph_leaves(provider: Provider, record: JobRecord, params: Mapping[str, Any]) -> Payload:
    step = _step(params, record)
    graph = provider.graph(record, step)
    leaves = [
        {"node": graph.nodes[i].to_json(), "proof": graph.tree.proof(i).to_json()}
        for i in _indices(params, graph.tree.n_leaves)
    ]
    return {"step": step, "leaves": leaves}, {}


def node_refs(node: GraphNode) -> list[dict[str, Any]]:
    """The tensor references whose values (or digests) judging ``node`` needs."""
    if node.op == COMMIT_OP:
        entries = node.args.get("entries", {}) if isinstance(node.args, dict) else {}
        return tensor_refs(list(entries.values()))
    return tensor_refs(node.args)


def node_inputs(provider: Provider, record: JobRecord, params: Mapping[str, Any]) -> Payload:
    step = _step(params, record)
    graph = provider.graph(record, step)
    k = params.get("node")
    if not isinstance(k, int) or not 0 <= k < len(graph.nodes):
        raise UnknownQueryError(f"bad node {k!r} in query")
    node = graph.nodes[k]
    digests_only = node.op == COMMIT_OP
    inputs: list[dict[str, Any]] = []
    blobs: dict[str, TensorBlob] = {}
    for ref in node_refs(node):
        key = ref_key(ref)
        if "node" in ref:
            i, j = ref["node"], ref["out"]
            if not 0 <= i < len(graph.nodes):
                raise UnknownQueryError(f"node {k} references unknown node {i}")
            entry: dict[str, Any] = {"ref": ref, "source": "node",
                                     "node": graph.nodes[i].to_json(),
                                     "proof": graph.tree.proof(i).to_json()}  # fmt: skip
            if not digests_only:
                tensor = graph.tensors[(i, j)]
                entry["digest"] = tensor_digest(tensor).hex()
                blobs[key] = TensorBlob.from_tensor(tensor)
            inputs.append(entry)
        elif ref["leaf"].startswith(BATCH):
            field = ref["leaf"][len(BATCH):]
            dataset = record.ctx.dataset
            samples = []
            for pos, index in enumerate(record.ctx.batch_indices(step)):
                sample = dataset.sample(index)
                samples.append({"index": index,
                                "digests": {f: tensor_digest(v).hex() for f, v in sample.items()},
                                "proof": dataset.proof(index).to_json()})  # fmt: skip
                blobs[f"sample/{pos}/{field}"] = TensorBlob.from_tensor(
                    torch.from_numpy(sample[field])
                )
            inputs.append({"ref": ref, "source": "batch", "field": field, "samples": samples})
        else:
            name = ref["leaf"]
            commitment = provider.commitment_at(record, step - 1)
            entry = {"ref": ref, "source": "state", "name": name,
                     "digest": commitment.digest(name).hex(),
                     "proof": commitment.proof(name).to_json()}  # fmt: skip
            if not digests_only:
                blobs[key] = TensorBlob.from_tensor(provider.state_at(record, step - 1)[name])
            inputs.append(entry)
    return {"step": step, "node": k, "inputs": inputs}, blobs


PAYLOAD_BUILDERS: dict[str, Callable[[Provider, JobRecord, Mapping[str, Any]], Payload]] = {
    kinds.STEP_CHILDREN: step_children,
    kinds.STEP_LEAVES: step_leaves,
    kinds.GRAPH_COMMIT: graph_commit,
    kinds.GRAPH_CHILDREN: graph_children,
    kinds.GRAPH_LEAVES: graph_leaves,
    kinds.NODE_INPUTS: node_inputs,
}
