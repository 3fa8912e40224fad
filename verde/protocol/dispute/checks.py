"""Pure checks of each answer against what its sender committed to (one function per kind).

Each check takes a typed answer (``verde.protocol.peers.payloads``, already read strictly) and
returns what the dispute keeps of it, or raises ``Fault``. They never consult the other party:
an answer is judged only against the sender's own earlier commitments and what the arbiter
derives itself (the spec, its meta replay, the dataset root), so an honest party's answers
always pass whatever its opponent does (Canetti, Riva, Rothblum 2011: the referee checks each
server against its own commitments).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from proofs import NodePosition, canonical_json, node_hash
from proofs.errors import ProofError
from proofs.merkle import verify_inclusion
from proofs.state import verify_state_entry
from repops import TraceNode
from repops.dispatch.encoding import RefKey
from verde.protocol.dispute.errors import Fault
from verde.protocol.graph.nodes import COMMIT_OP, node_leaf, ref_name
from verde.protocol.jobs.context import BATCH
from verde.protocol.jobs.datasets import SAMPLE_DOMAIN
from verde.protocol.peers.errors import PeerError
from verde.protocol.peers.messages import TensorBlob
from verde.protocol.peers.payloads import (
    BatchInput,
    GraphCommitAnswer,
    NodeInputsAnswer,
    NodeOutputInput,
    ProvenNode,
    StateInput,
    StepLeavesAnswer,
)


@dataclass(frozen=True)
class CheckedInput:
    """One input of the disputed node, checked: its agreed digest (hex; a batch is named by its
    samples' digests) and, when the tensors were sent, the tensor."""

    digest: str
    tensor: torch.Tensor | None


def check_children(position: NodePosition, children: tuple[bytes, bytes], expected: NodePosition,
                   parent: bytes) -> tuple[bytes, bytes]:  # fmt: skip
    """A descent answer: the two children of ``expected`` must hash to ``parent``."""
    if position != expected:
        raise Fault("malformed", f"answer is about position {position}, not {expected}")
    if node_hash(*children) != parent:
        raise Fault("inconsistent_answer",
                    f"children at {expected} do not hash to the committed parent")  # fmt: skip
    return children


def check_step_leaves(answer: StepLeavesAnswer, indices: Sequence[int], root: bytes,
                      n_leaves: int) -> dict[int, bytes]:  # fmt: skip
    """Step-tree leaves (state roots) with inclusion proofs under the party's step root."""
    if [leaf.index for leaf in answer.leaves] != list(indices):
        raise Fault("malformed", f"expected leaves {list(indices)}")
    out: dict[int, bytes] = {}
    for leaf in answer.leaves:
        try:
            verify_inclusion(root, leaf.data, leaf.index, n_leaves, leaf.proof)
        except ProofError as exc:
            raise Fault("inconsistent_answer",
                        f"step leaf {leaf.index} is not in the committed step tree: {exc}"
                        ) from exc  # fmt: skip
        out[leaf.index] = leaf.data
    return out


def check_structure(node: TraceNode, expected: Mapping[str, Any]) -> None:
    """The node must be exactly what the arbiter's own meta replay says comes at its index,
    with one 32-byte digest per output (the commit node: exactly one, the state root)."""
    if node.structure() != dict(expected):
        raise Fault("wrong_graph",
                    f"node {node.index} is {node.op} but the arbiter's replay has "
                    f"{expected['op']} with other arguments" if node.op != expected["op"] else
                    f"node {node.index} ({node.op}) differs from the arbiter's replay")  # fmt: skip
    count = 1 if node.op == COMMIT_OP else len(node.output_meta)
    if len(node.output_digests) != count or any(
            d is None or len(d) != 32 for d in node.output_digests):
        raise Fault("wrong_graph", f"node {node.index} must have {count} output digests")


def check_node_leaf(proven: ProvenNode, index: int, root: bytes, *, n_nodes: int,
                    expected: Mapping[str, Any]) -> TraceNode:  # fmt: skip
    """A graph node with its proof under the party's graph root, and its structure."""
    node = proven.node
    if node.index != index:
        raise Fault("malformed", f"expected node {index}, got node {node.index}")
    try:
        verify_inclusion(root, node_leaf(node), index, n_nodes, proven.proof)
    except ProofError as exc:
        raise Fault("inconsistent_answer",
                    f"node {index} is not in the committed graph: {exc}") from exc
    check_structure(node, expected)
    return node


def check_graph_commit(answer: GraphCommitAnswer, step: int,
                       expected: Sequence[Mapping[str, Any]], state_root: bytes
                       ) -> tuple[bytes, int]:  # fmt: skip
    """The graph commitment of step ``s``: node count, final commit node and its proof."""
    if answer.step != step:
        raise Fault("malformed", f"graph commitment is not for step {step}")
    if answer.n_nodes != len(expected):
        raise Fault("wrong_graph",
                    f"graph of step {step} has {answer.n_nodes} nodes; the arbiter's replay has "
                    f"{len(expected)}")  # fmt: skip
    node = check_node_leaf(answer.final, answer.n_nodes - 1, answer.root, n_nodes=answer.n_nodes,
                           expected=expected[-1])  # fmt: skip
    if node.output_digests != (state_root,):
        raise Fault("inconsistent_answer",
                    f"the graph of step {step} ends in another state than the one the party "
                    f"committed to at step {step} ({state_root.hex()})")  # fmt: skip
    return answer.root, answer.n_nodes


def sample_leaf_from_digests(digests: Mapping[str, bytes]) -> bytes:
    """The dataset Merkle leaf of a sample, from its per-field digests."""
    return SAMPLE_DOMAIN + canonical_json({k: v.hex() for k, v in digests.items()})


def _blob(blobs: Mapping[str, Any], key: str, digest: bytes) -> torch.Tensor:
    """The tensor sent under ``key``; it must have the digest the signed answer claims."""
    blob = blobs.get(key)
    if blob is None:
        raise Fault("bad_input", f"tensor {key} was not sent")
    try:
        if not isinstance(blob, TensorBlob):
            blob = TensorBlob.from_json(blob)
        tensor = blob.to_tensor()
        actual = blob.digest_hex()
    except (PeerError, ProofError) as exc:
        raise Fault("bad_input", f"tensor {key} is unreadable: {exc}") from exc
    if actual != digest.hex():
        raise Fault("bad_input", f"tensor {key} does not have the digest the answer claims")
    return tensor


@dataclass(frozen=True)
class InputContext:
    """What the inputs of node ``node`` of step ``step`` are checked against."""

    step: int
    node: int
    refs: Sequence[RefKey]
    graph_root: bytes
    expected: Sequence[Mapping[str, Any]]
    prev_state_root: bytes
    dataset_root: bytes
    n_samples: int
    batch_indices: Sequence[int]
    need_tensors: bool


def check_node_inputs(answer: NodeInputsAnswer, blobs: Mapping[str, Any] | None,
                      ctx: InputContext) -> dict[RefKey, CheckedInput]:
    """Inputs of node ``ctx.node``, each checked against its commitment.

    With ``blobs=None`` (an offline verifier without bundled tensors) only the digests and
    proofs are checked.
    """
    if answer.step != ctx.step or answer.node != ctx.node:
        raise Fault("malformed", f"inputs are not for node {ctx.node} of step {ctx.step}")
    if [e.ref for e in answer.inputs] != list(ctx.refs):
        raise Fault("malformed",
                    f"inputs of node {ctx.node} must be {[ref_name(r) for r in ctx.refs]}")
    out: dict[RefKey, CheckedInput] = {}
    for entry in answer.inputs:
        ref = entry.ref
        if ref[0] == "node":
            if not isinstance(entry, NodeOutputInput):
                raise Fault("bad_input", f"input {ref_name(ref)} must be a node output")
            out[ref] = _node_output(entry, blobs, ctx)
        elif str(ref[1]).startswith(BATCH):
            if not isinstance(entry, BatchInput):
                raise Fault("bad_input", f"input {ref_name(ref)} must be a batch field")
            out[ref] = _batch(entry, blobs, ctx)
        else:
            if not isinstance(entry, StateInput):
                raise Fault("bad_input", f"input {ref_name(ref)} must be a state entry")
            out[ref] = _state(entry, blobs, ctx)
    return out


def _node_output(entry: NodeOutputInput, blobs: Mapping[str, Any] | None,
                 ctx: InputContext) -> CheckedInput:
    key, i, j = ref_name(entry.ref), int(entry.ref[1]), int(entry.ref[2])
    if not 0 <= i < ctx.node:
        raise Fault("bad_input", f"input {key} must be an earlier node's output")
    producer = check_node_leaf(entry.producer, i, ctx.graph_root, n_nodes=len(ctx.expected),
                               expected=ctx.expected[i])  # fmt: skip
    if j >= len(producer.output_digests):
        raise Fault("bad_input", f"input {key} names an output node {i} lacks")
    digest = producer.output_digests[j]
    assert digest is not None  # check_structure requires every digest
    tensor = None
    if ctx.need_tensors:
        if entry.digest != digest:
            raise Fault("bad_input", f"input {key}: the tensor sent is claimed to have another "
                        "digest than the committed node output")
        if blobs is not None:
            tensor = _blob(blobs, key, digest)
    return CheckedInput(digest.hex(), tensor)


def _batch(entry: BatchInput, blobs: Mapping[str, Any] | None,
           ctx: InputContext) -> CheckedInput:
    key, field = ref_name(entry.ref), entry.field
    if str(entry.ref[1])[len(BATCH):] != field:
        raise Fault("bad_input", f"input {key} is not batch field {field}")
    if len(entry.samples) != len(ctx.batch_indices):
        raise Fault("bad_input", f"input {key} must carry {len(ctx.batch_indices)} samples")
    parts = []
    for pos, (sample, index) in enumerate(zip(entry.samples, ctx.batch_indices, strict=True)):
        if sample.index != index:
            raise Fault("bad_input", f"batch position {pos} of step {ctx.step} must be "
                                     f"sample {index}")
        if field not in sample.digests:
            raise Fault("malformed", f"sample {index} lacks a digest of field {field}")
        try:
            verify_inclusion(ctx.dataset_root, sample_leaf_from_digests(sample.digests), index,
                             ctx.n_samples, sample.proof)  # fmt: skip
        except (ProofError, ValueError) as exc:
            raise Fault("bad_input", f"sample {index} is not in the dataset: {exc}") from exc
        if blobs is not None:
            parts.append(_blob(blobs, f"sample/{pos}/{field}", sample.digests[field]))
    # The batch is named by its samples' digests (checkable without the tensors).
    listed = canonical_json([s.digests[field].hex() for s in entry.samples])
    digest = "samples:" + hashlib.sha256(listed).hexdigest()
    return CheckedInput(digest, torch.stack(parts) if blobs is not None else None)


def _state(entry: StateInput, blobs: Mapping[str, Any] | None,
           ctx: InputContext) -> CheckedInput:
    key, name = ref_name(entry.ref), str(entry.ref[1])
    if entry.name != name:
        raise Fault("bad_input", f"input {key} must be state entry {name}")
    try:
        verify_state_entry(ctx.prev_state_root, name, entry.digest, entry.proof)
    except ProofError as exc:
        raise Fault("bad_input",
                    f"state entry {name} is not in the agreed state {ctx.step - 1}: {exc}"
                    ) from exc  # fmt: skip
    tensor = None
    if ctx.need_tensors and blobs is not None:
        tensor = _blob(blobs, key, entry.digest)
    return CheckedInput(entry.digest.hex(), tensor)
