"""The per-phase answer checks of a dispute (which commitment each answer is held to).

Split from ``verde.protocol.dispute.state`` so the state machine stays about transitions. Each
branch calls a pure check from ``verde.protocol.dispute.checks`` with the commitments the sender
made in earlier rounds (Canetti, Riva, Rothblum 2011; Verde, Arun et al. 2025).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from proofs.errors import ProofError
from verde.protocol.dispute import checks
from verde.protocol.dispute.errors import Fault, InvalidEvent
from verde.protocol.jobs.context import JobContext
from verde.protocol.provider.answers import node_refs
from verde.protocol.provider.tracing import COMMIT_OP, GraphNode

if TYPE_CHECKING:
    from verde.protocol.dispute.state import DisputeState

PARTIES = ("a", "b")


def check_phase_answer(state: DisputeState, party: str, payload: dict[str, Any], blobs: Any,
                       blobs_available: bool) -> Any:  # fmt: skip
    """Check one answer against what ``party`` committed to earlier in this dispute."""
    i = PARTIES.index(party)
    if state.phase in ("step_descent", "graph_descent"):
        extra = {"step": state.data["step"]} if state.phase == "graph_descent" else None
        pair = checks.check_children(payload, state._descent.position.to_json(),
                                     state._descent.current_hashes[i], extra)  # fmt: skip
        return [h.hex() for h in pair]
    if state.phase == "step_leaves":
        root = bytes.fromhex(state.data["step_roots"][party])
        leaves = checks.check_step_leaves(payload, state._leaf_indices(), root,
                                          state.spec.steps + 1)  # fmt: skip
        k = state._descent.leaf_index
        try:
            state._descent.check_leaf(party, leaves[k])
        except ProofError as exc:
            raise Fault("inconsistent_answer", str(exc)) from exc
        return {str(j): v.hex() for j, v in leaves.items()}
    if state.phase == "graph_open":
        root, n = checks.check_graph_commit(payload, state.data["step"], state.expected(),
                                            bytes.fromhex(state.data["claimed"][party]))
        return {"root": root.hex(), "n_nodes": n}
    k = state.data["node"]
    graph_root = bytes.fromhex(state.data["graph_roots"][party])
    if state.phase == "graph_leaf":
        if checks._field(payload, "step", int) != state.data["step"]:
            raise Fault("malformed", "graph leaves are for another step")
        leaves = checks._field(payload, "leaves", list)
        if len(leaves) != 1 or not isinstance(leaves[0], dict):
            raise Fault("malformed", "expected exactly one graph leaf")
        node = checks.check_node_leaf(leaves[0].get("node"), leaves[0].get("proof"), k,
                                      graph_root, n_nodes=len(state.expected()),
                                      expected=state.expected()[k])  # fmt: skip
        try:
            state._descent.check_leaf(party, node.leaf_data())
        except ProofError as exc:
            raise Fault("inconsistent_answer", str(exc)) from exc
        return node.to_json()
    if state.phase == "inputs":
        ctx = JobContext.from_spec(state.spec)
        expected_node = GraphNode(k, **{f: state.expected()[k][f]
                                        for f in ("op", "args", "meta")}, out=[])  # fmt: skip
        refs = node_refs(expected_node)
        checked = checks.check_node_inputs(
            payload, blobs if blobs_available else None, step=state.data["step"], node=k,
            refs=refs, graph_root=graph_root, n_nodes=len(state.expected()),
            expected=state.expected(), prev_state_root=bytes.fromhex(state.data["prev_root"]),
            dataset_root=ctx.dataset.root, n_samples=ctx.dataset.n_samples,
            batch_indices=ctx.batch_indices(state.data["step"]),
            need_tensors=expected_node.op != COMMIT_OP,
        )
        state._inputs.setdefault(party, checked)
        return {key: v["digest"] for key, v in checked.items()}
    raise InvalidEvent(f"no answers expected in phase {state.phase}")  # pragma: no cover
