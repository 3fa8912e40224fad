"""The dispute's messages: one dataclass per query and per answer kind, with their JSON forms.

The arbiter asks (Verde, Arun et al. 2025; after Canetti, Riva, Rothblum 2011), one round per
query, each answer signed by the party over (job, dispute, round, kind):

=================  ======================  ==================================================
kind               query                   answer
=================  ======================  ==================================================
``step_children``  position                the two child hashes of that node of the step tree
``step_leaves``    indices                 state roots of those steps, with inclusion proofs
``graph_commit``   step                    graph root, node count, the final node and its proof
``graph_children`` step, position          the two child hashes of that node of the graph tree
``graph_leaves``   step, indices           those graph nodes with their proofs
``node_inputs``    step, node              every input of that node, each with its proof
=================  ======================  ==================================================

A provider builds these (``verde.protocol.provider.answers``), signs ``to_json()``, and the
arbiter reads them back with ``from_json`` (strict: :class:`MalformedMessage` names the field)
before checking them against the sender's commitments (``verde.protocol.dispute.checks``).
Tensors travel beside an answer as ``TensorBlob`` keyed by ``verde.protocol.graph.nodes.ref_name``
(``sample/<position>/<field>`` for batch samples); the signed answer names their digests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from proofs import InclusionProof, NodePosition
from repops import TraceNode
from repops.dispatch.encoding import RefKey
from verde.protocol.graph.nodes import ref_json
from verde.protocol.peers import fields as f
from verde.protocol.peers.errors import MalformedMessage

# --- queries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepChildrenQuery:
    KIND: ClassVar[str] = "step_children"
    position: NodePosition

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> StepChildrenQuery:
        d = f.exact_fields(data, {"position"}, cls.KIND)
        return cls(f.position(d["position"], cls.KIND))


@dataclass(frozen=True)
class StepLeavesQuery:
    KIND: ClassVar[str] = "step_leaves"
    indices: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"indices": list(self.indices)}

    @classmethod
    def from_json(cls, data: Any) -> StepLeavesQuery:
        d = f.exact_fields(data, {"indices"}, cls.KIND)
        return cls(f.indices(d, "indices", cls.KIND))


@dataclass(frozen=True)
class GraphCommitQuery:
    KIND: ClassVar[str] = "graph_commit"
    step: int

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step}

    @classmethod
    def from_json(cls, data: Any) -> GraphCommitQuery:
        d = f.exact_fields(data, {"step"}, cls.KIND)
        return cls(f.integer(d, "step", cls.KIND, 1))


@dataclass(frozen=True)
class GraphChildrenQuery:
    KIND: ClassVar[str] = "graph_children"
    step: int
    position: NodePosition

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "position": self.position.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> GraphChildrenQuery:
        d = f.exact_fields(data, {"step", "position"}, cls.KIND)
        return cls(f.integer(d, "step", cls.KIND, 1), f.position(d["position"], cls.KIND))


@dataclass(frozen=True)
class GraphLeavesQuery:
    KIND: ClassVar[str] = "graph_leaves"
    step: int
    indices: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "indices": list(self.indices)}

    @classmethod
    def from_json(cls, data: Any) -> GraphLeavesQuery:
        d = f.exact_fields(data, {"step", "indices"}, cls.KIND)
        return cls(f.integer(d, "step", cls.KIND, 1), f.indices(d, "indices", cls.KIND))


@dataclass(frozen=True)
class NodeInputsQuery:
    KIND: ClassVar[str] = "node_inputs"
    step: int
    node: int

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "node": self.node}

    @classmethod
    def from_json(cls, data: Any) -> NodeInputsQuery:
        d = f.exact_fields(data, {"step", "node"}, cls.KIND)
        return cls(f.integer(d, "step", cls.KIND, 1), f.integer(d, "node", cls.KIND))


QueryParams = (StepChildrenQuery | StepLeavesQuery | GraphCommitQuery | GraphChildrenQuery
               | GraphLeavesQuery | NodeInputsQuery)

# --- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepChildrenAnswer:
    KIND: ClassVar[str] = "step_children"
    position: NodePosition
    children: tuple[bytes, bytes]

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position.to_json(), "children": [c.hex() for c in self.children]}

    @classmethod
    def from_json(cls, data: Any) -> StepChildrenAnswer:
        d = f.exact_fields(data, {"position", "children"}, cls.KIND)
        return cls(f.position(d["position"], cls.KIND), f.hash_pair(d["children"], cls.KIND))


@dataclass(frozen=True)
class StepLeaf:
    """The state root of step ``index`` (leaf ``index`` of the step tree) and its proof."""

    index: int
    data: bytes
    proof: InclusionProof

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "data": self.data.hex(), "proof": self.proof.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> StepLeaf:
        d = f.exact_fields(data, {"index", "data", "proof"}, "step leaf")
        return cls(f.integer(d, "index", "step leaf"), f.digest(d["data"], "step leaf data"),
                   f.proof(d["proof"], "step leaf proof"))


@dataclass(frozen=True)
class StepLeavesAnswer:
    KIND: ClassVar[str] = "step_leaves"
    leaves: tuple[StepLeaf, ...]

    def to_json(self) -> dict[str, Any]:
        return {"leaves": [leaf.to_json() for leaf in self.leaves]}

    @classmethod
    def from_json(cls, data: Any) -> StepLeavesAnswer:
        d = f.exact_fields(data, {"leaves"}, cls.KIND)
        return cls(tuple(StepLeaf.from_json(v) for v in f.array(d, "leaves", cls.KIND)))


@dataclass(frozen=True)
class ProvenNode:
    """A graph node and its inclusion proof under the sender's graph root."""

    node: TraceNode
    proof: InclusionProof

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node.to_json(), "proof": self.proof.to_json()}

    @classmethod
    def from_json(cls, data: Any, what: str = "graph node") -> ProvenNode:
        d = f.exact_fields(data, {"node", "proof"}, what)
        return cls(f.node(d["node"], what), f.proof(d["proof"], f"{what} proof"))


@dataclass(frozen=True)
class GraphCommitAnswer:
    KIND: ClassVar[str] = "graph_commit"
    step: int
    root: bytes
    n_nodes: int
    final: ProvenNode

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "root": self.root.hex(), "n_nodes": self.n_nodes,
                "final": self.final.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> GraphCommitAnswer:
        d = f.exact_fields(data, {"step", "root", "n_nodes", "final"}, cls.KIND)
        return cls(f.integer(d, "step", cls.KIND, 1), f.digest(d["root"], "graph root"),
                   f.integer(d, "n_nodes", cls.KIND, 1),
                   ProvenNode.from_json(d["final"], "final node"))


@dataclass(frozen=True)
class GraphChildrenAnswer:
    KIND: ClassVar[str] = "graph_children"
    step: int
    position: NodePosition
    children: tuple[bytes, bytes]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "position": self.position.to_json(),
                "children": [c.hex() for c in self.children]}

    @classmethod
    def from_json(cls, data: Any) -> GraphChildrenAnswer:
        d = f.exact_fields(data, {"step", "position", "children"}, cls.KIND)
        return cls(f.integer(d, "step", cls.KIND, 1), f.position(d["position"], cls.KIND),
                   f.hash_pair(d["children"], cls.KIND))


@dataclass(frozen=True)
class GraphLeavesAnswer:
    KIND: ClassVar[str] = "graph_leaves"
    step: int
    leaves: tuple[ProvenNode, ...]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "leaves": [leaf.to_json() for leaf in self.leaves]}

    @classmethod
    def from_json(cls, data: Any) -> GraphLeavesAnswer:
        d = f.exact_fields(data, {"step", "leaves"}, cls.KIND)
        leaves = tuple(ProvenNode.from_json(v) for v in f.array(d, "leaves", cls.KIND))
        return cls(f.integer(d, "step", cls.KIND, 1), leaves)


@dataclass(frozen=True)
class NodeOutputInput:
    """An input that an earlier node produced: that node (with its proof) and, when the tensor
    is sent, the digest the sender claims for it."""

    ref: RefKey
    producer: ProvenNode
    digest: bytes | None

    def to_json(self) -> dict[str, Any]:
        doc = {"ref": ref_json(self.ref), "source": "node", **self.producer.to_json()}
        if self.digest is not None:
            doc["digest"] = self.digest.hex()
        return doc


@dataclass(frozen=True)
class StateInput:
    """An entry of the agreed state ``s - 1``, with its proof under that state's root."""

    ref: RefKey
    name: str
    digest: bytes
    proof: InclusionProof

    def to_json(self) -> dict[str, Any]:
        return {"ref": ref_json(self.ref), "source": "state", "name": self.name,
                "digest": self.digest.hex(), "proof": self.proof.to_json()}


@dataclass(frozen=True)
class SampleEntry:
    """One dataset sample of the batch: its index, per-field digests and its dataset proof."""

    index: int
    digests: dict[str, bytes]
    proof: InclusionProof

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "digests": {k: v.hex() for k, v in self.digests.items()},
                "proof": self.proof.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> SampleEntry:
        d = f.exact_fields(data, {"index", "digests", "proof"}, "batch sample")
        digests = d["digests"]
        if not isinstance(digests, Mapping) or not digests:
            raise MalformedMessage("batch sample: digests must be a non-empty object")
        return cls(f.integer(d, "index", "batch sample"),
                   {str(k): f.digest(v, f"sample field {k}") for k, v in digests.items()},
                   f.proof(d["proof"], "batch sample proof"))


@dataclass(frozen=True)
class BatchInput:
    """A batch field: every sample of the step's batch, each with its dataset proof."""

    ref: RefKey
    field: str
    samples: tuple[SampleEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {"ref": ref_json(self.ref), "source": "batch", "field": self.field,
                "samples": [s.to_json() for s in self.samples]}


InputEntry = NodeOutputInput | StateInput | BatchInput


def _input_from_json(data: Any) -> InputEntry:
    what = "node input"
    if not isinstance(data, Mapping) or data.get("source") not in ("node", "state", "batch"):
        raise MalformedMessage(f"{what}: source must be 'node', 'state' or 'batch'")
    source = data["source"]
    if source == "node":
        d = f.exact_fields(data, {"ref", "source", "node", "proof"}, what, {"digest"})
        producer = ProvenNode.from_json({"node": d["node"], "proof": d["proof"]}, what)
        claimed = f.digest(d["digest"], f"{what} digest") if "digest" in d else None
        return NodeOutputInput(f.ref(d["ref"], what), producer, claimed)
    if source == "state":
        d = f.exact_fields(data, {"ref", "source", "name", "digest", "proof"}, what)
        return StateInput(f.ref(d["ref"], what), f.text(d, "name", what),
                          f.digest(d["digest"], f"{what} digest"), f.proof(d["proof"], what))
    d = f.exact_fields(data, {"ref", "source", "field", "samples"}, what)
    samples = tuple(SampleEntry.from_json(s) for s in f.array(d, "samples", what))
    return BatchInput(f.ref(d["ref"], what), f.text(d, "field", what), samples)


@dataclass(frozen=True)
class NodeInputsAnswer:
    KIND: ClassVar[str] = "node_inputs"
    step: int
    node: int
    inputs: tuple[InputEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "node": self.node,
                "inputs": [entry.to_json() for entry in self.inputs]}

    @classmethod
    def from_json(cls, data: Any) -> NodeInputsAnswer:
        d = f.exact_fields(data, {"step", "node", "inputs"}, cls.KIND)
        inputs = tuple(_input_from_json(v) for v in f.array(d, "inputs", cls.KIND))
        return cls(f.integer(d, "step", cls.KIND, 1), f.integer(d, "node", cls.KIND), inputs)


AnswerPayload = (StepChildrenAnswer | StepLeavesAnswer | GraphCommitAnswer | GraphChildrenAnswer
                 | GraphLeavesAnswer | NodeInputsAnswer)

QUERY_TYPES: dict[str, type[QueryParams]] = {
    cls.KIND: cls for cls in (StepChildrenQuery, StepLeavesQuery, GraphCommitQuery,
                              GraphChildrenQuery, GraphLeavesQuery, NodeInputsQuery)
}
ANSWER_TYPES: dict[str, type[AnswerPayload]] = {
    cls.KIND: cls for cls in (StepChildrenAnswer, StepLeavesAnswer, GraphCommitAnswer,
                              GraphChildrenAnswer, GraphLeavesAnswer, NodeInputsAnswer)
}
#: Every query kind of the dispute, in the order the phases ask them.
ALL_KINDS = tuple(QUERY_TYPES)


def parse_query(kind: str, params: Any) -> QueryParams:
    """The typed parameters of a query of ``kind``; MalformedMessage for anything else."""
    cls = QUERY_TYPES.get(kind)
    if cls is None:
        raise MalformedMessage(f"unknown query kind {kind!r}; known: {list(QUERY_TYPES)}")
    return cls.from_json(params)


def parse_answer(kind: str, payload: Any) -> AnswerPayload:
    """The typed payload of a signed answer of ``kind``; MalformedMessage for anything else."""
    cls = ANSWER_TYPES.get(kind)
    if cls is None:
        raise MalformedMessage(f"unknown answer kind {kind!r}")
    return cls.from_json(payload)
