"""Pure checks of each answer against what its sender committed to (one function per kind).

Each check returns the parsed content of a valid answer or raises ``Fault``. They never
consult the other party: an answer is judged only against the sender's own earlier
commitments and what the arbiter derives itself (the spec, its meta replay, the dataset
root), so an honest party's answers always pass whatever its opponent does (Canetti, Riva,
Rothblum 2011: the referee checks each server against its own commitments).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from proofs import InclusionProof, canonical_json, hex_decode, node_hash
from proofs.errors import ProofError
from proofs.merkle import leaf_hash, verify_inclusion
from proofs.state import verify_state_entry
from verde.protocol.dispute.errors import Fault
from verde.protocol.jobs.context import BATCH
from verde.protocol.jobs.datasets import SAMPLE_DOMAIN
from verde.protocol.peers.errors import PeerError
from verde.protocol.peers.messages import TensorBlob
from verde.protocol.provider.tracing import COMMIT_OP, GraphNode, ref_key


def _field(payload: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(payload, Mapping) or key not in payload:
        raise Fault("malformed", f"answer has no field {key!r}")
    value = payload[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise Fault("malformed", f"field {key!r} has the wrong type")
    return value


def _hash(value: Any, what: str) -> bytes:
    try:
        return hex_decode(value, what, 32)
    except ProofError as exc:
        raise Fault("malformed", str(exc)) from exc


def _proof(value: Any, what: str) -> InclusionProof:
    try:
        return InclusionProof.from_json(value)
    except (ProofError, TypeError, ValueError) as exc:
        raise Fault("malformed", f"{what}: {exc}") from exc


def check_children(payload: Mapping[str, Any], position: list[int], parent: bytes,
                   extra: Mapping[str, Any] | None = None) -> tuple[bytes, bytes]:  # fmt: skip
    """A descent answer: the two children of ``position`` must hash to ``parent``."""
    for key, value in (extra or {}).items():
        if payload.get(key) != value:
            raise Fault("malformed", f"answer is about {key}={payload.get(key)!r}, not {value!r}")
    if _field(payload, "position", list) != position:
        raise Fault("malformed", f"answer is about position {payload['position']}, not {position}")
    children = _field(payload, "children", list)
    if len(children) != 2:
        raise Fault("malformed", "children must be a pair")
    left, right = _hash(children[0], "left child"), _hash(children[1], "right child")
    if node_hash(left, right) != parent:
        raise Fault("inconsistent_answer",
                    f"children at {position} do not hash to the committed parent")  # fmt: skip
    return left, right


def check_step_leaves(payload: Mapping[str, Any], indices: Sequence[int], root: bytes,
                      n_leaves: int) -> dict[int, bytes]:  # fmt: skip
    """Step-tree leaves (state roots) with inclusion proofs under the party's step root."""
    leaves = _field(payload, "leaves", list)
    if [leaf.get("index") if isinstance(leaf, dict) else None for leaf in leaves] != list(indices):
        raise Fault("malformed", f"expected leaves {list(indices)}")
    out: dict[int, bytes] = {}
    for leaf in leaves:
        index = leaf["index"]
        data = _hash(leaf.get("data"), f"leaf {index}")
        proof = _proof(leaf.get("proof"), f"leaf {index} proof")
        try:
            verify_inclusion(root, data, index, n_leaves, proof)
        except ProofError as exc:
            raise Fault("inconsistent_answer",
                        f"step leaf {index} is not in the committed step tree: {exc}") from exc
        out[index] = data
    return out


def parse_node(value: Any, what: str) -> GraphNode:
    try:
        return GraphNode.from_json(value)
    except (ValueError, TypeError) as exc:
        raise Fault("malformed", f"{what}: {exc}") from exc


def check_structure(node: GraphNode, expected: Mapping[str, Any]) -> None:
    """The node must be exactly what the arbiter's own meta replay says comes at its index."""
    if node.structure() != dict(expected):
        raise Fault("wrong_graph",
                    f"node {node.index} is {node.op} but the arbiter's replay has "
                    f"{expected['op']} with other arguments" if node.op != expected["op"] else
                    f"node {node.index} ({node.op}) differs from the arbiter's replay")  # fmt: skip
    if node.op == COMMIT_OP:
        if len(node.out) != 1:
            raise Fault("wrong_graph", f"commit node {node.index} must have one output digest")
    elif len(node.out) != len(node.meta) or any(
        (m is None) != (d == "") for m, d in zip(node.meta, node.out, strict=True)
    ):
        raise Fault("wrong_graph", f"node {node.index} has {len(node.out)} output digests")
    for d in node.out:
        if d:
            _hash(d, f"node {node.index} output digest")


def check_node_leaf(node_json: Any, proof_json: Any, index: int, root: bytes, *, n_nodes: int,
                    expected: Mapping[str, Any]) -> GraphNode:  # fmt: skip
    """A graph node with its proof under the party's graph root, and its structure."""
    node = parse_node(node_json, f"node {index}")
    if node.index != index:
        raise Fault("malformed", f"expected node {index}, got node {node.index}")
    proof = _proof(proof_json, f"node {index} proof")
    try:
        verify_inclusion(root, node.leaf_data(), index, n_nodes, proof)
    except ProofError as exc:
        raise Fault("inconsistent_answer",
                    f"node {index} is not in the committed graph: {exc}") from exc
    check_structure(node, expected)
    return node


def check_graph_commit(payload: Mapping[str, Any], step: int, expected: Sequence[Mapping[str, Any]],
                       state_root: bytes) -> tuple[bytes, int]:  # fmt: skip
    """The graph commitment of step ``s``: node count, final commit node and its proof."""
    if _field(payload, "step", int) != step:
        raise Fault("malformed", f"graph commitment is not for step {step}")
    root = _hash(payload.get("root"), "graph root")
    n_nodes = _field(payload, "n_nodes", int)
    if n_nodes != len(expected):
        raise Fault("wrong_graph",
                    f"graph of step {step} has {n_nodes} nodes; the arbiter's replay has "
                    f"{len(expected)}")  # fmt: skip
    final = _field(payload, "final", dict)
    node = check_node_leaf(final.get("node"), final.get("proof"), n_nodes - 1, root,
                           n_nodes=n_nodes, expected=expected[-1])  # fmt: skip
    if node.out != [state_root.hex()]:
        raise Fault("inconsistent_answer",
                    f"the graph of step {step} ends in state {node.out}, but the party committed "
                    f"to state {state_root.hex()} at step {step}")  # fmt: skip
    return root, n_nodes


def sample_leaf_from_digests(digests: Mapping[str, str]) -> bytes:
    return SAMPLE_DOMAIN + canonical_json(dict(digests))


def _blob(blobs: Mapping[str, Any], key: str, digest: str) -> Any:
    """The tensor sent under ``key``; it must have the digest the signed payload claims."""
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
    if actual != digest:
        raise Fault("bad_input", f"tensor {key} does not have the digest the answer claims")
    return tensor


def check_node_inputs(
    payload: Mapping[str, Any],
    blobs: Mapping[str, Any] | None,
    *,
    step: int,
    node: int,
    refs: Sequence[Mapping[str, Any]],
    graph_root: bytes,
    n_nodes: int,
    expected: Sequence[Mapping[str, Any]],
    prev_state_root: bytes,
    dataset_root: bytes,
    n_samples: int,
    batch_indices: Sequence[int],
    need_tensors: bool,
) -> dict[str, dict[str, Any]]:
    """Inputs of node ``node``, each checked against its commitment.

    Returns ``{ref key: {"digest": hex, "tensor": tensor or None}}``. With ``blobs=None``
    (an offline verifier without bundled tensors) only the digests and proofs are checked.
    """
    import torch

    if _field(payload, "step", int) != step or _field(payload, "node", int) != node:
        raise Fault("malformed", f"inputs are not for node {node} of step {step}")
    entries = _field(payload, "inputs", list)
    if [e.get("ref") if isinstance(e, dict) else None for e in entries] != list(refs):
        raise Fault("malformed", f"inputs of node {node} must be {list(refs)} in that order")
    out: dict[str, dict[str, Any]] = {}
    for entry, ref in zip(entries, refs, strict=True):
        key = ref_key(ref)
        tensor = None
        if "node" in ref:
            if entry.get("source") != "node" or not 0 <= ref["node"] < node:
                raise Fault("bad_input", f"input {key} must be an earlier node's output")
            producer = check_node_leaf(entry.get("node"), entry.get("proof"), ref["node"],
                                       graph_root, n_nodes=n_nodes,
                                       expected=expected[ref["node"]])  # fmt: skip
            if not 0 <= ref["out"] < len(producer.out) or not producer.out[ref["out"]]:
                raise Fault("bad_input", f"input {key} names an output node {ref['node']} lacks")
            digest = producer.out[ref["out"]]
            if need_tensors:
                if entry.get("digest") != digest:
                    raise Fault("bad_input",
                                f"input {key}: the tensor sent is claimed to have another digest "
                                "than the committed node output")  # fmt: skip
                if blobs is not None:
                    tensor = _blob(blobs, key, digest)
        elif ref["leaf"].startswith(BATCH):
            field = ref["leaf"][len(BATCH):]
            if entry.get("source") != "batch" or entry.get("field") != field:
                raise Fault("bad_input", f"input {key} must be batch field {field}")
            samples = entry.get("samples")
            if not isinstance(samples, list) or len(samples) != len(batch_indices):
                raise Fault("bad_input", f"input {key} must carry {len(batch_indices)} samples")
            parts = []
            for pos, (sample, index) in enumerate(zip(samples, batch_indices, strict=True)):
                if not isinstance(sample, dict) or sample.get("index") != index:
                    raise Fault("bad_input",
                                f"batch position {pos} of step {step} must be sample {index}")
                digests = sample.get("digests")
                if not isinstance(digests, dict) or field not in digests:
                    raise Fault("malformed", f"sample {index} lacks field digests")
                proof = _proof(sample.get("proof"), f"sample {index} proof")
                try:
                    verify_inclusion(dataset_root, sample_leaf_from_digests(digests), index,
                                     n_samples, proof)  # fmt: skip
                except (ProofError, ValueError) as exc:
                    raise Fault("bad_input",
                                f"sample {index} is not in the dataset: {exc}") from exc
                if blobs is not None:
                    parts.append(_blob(blobs, f"sample/{pos}/{field}", digests[field]))
            # The batch is named by its samples' digests (checkable without the tensors).
            listed = canonical_json([s["digests"][field] for s in samples])
            digest = "samples:" + hashlib.sha256(listed).hexdigest()
            if blobs is not None:
                tensor = torch.stack(parts)
        else:
            name = ref["leaf"]
            if entry.get("source") != "state" or entry.get("name") != name:
                raise Fault("bad_input", f"input {key} must be state entry {name}")
            digest_raw = _hash(entry.get("digest"), f"state entry {name} digest")
            proof = _proof(entry.get("proof"), f"state entry {name} proof")
            try:
                verify_state_entry(prev_state_root, name, digest_raw, proof)
            except ProofError as exc:
                raise Fault("bad_input",
                            f"state entry {name} is not in the agreed state {step - 1}: {exc}"
                            ) from exc  # fmt: skip
            digest = digest_raw.hex()
            if need_tensors and blobs is not None:
                tensor = _blob(blobs, key, digest)
        out[key] = {"digest": digest, "tensor": tensor}
    return out


def leaf_hash_of(data: bytes) -> bytes:
    return leaf_hash(data)
