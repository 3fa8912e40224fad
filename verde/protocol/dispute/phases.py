"""The phases of a dispute as objects: each asks one query, checks one answer, and advances.

Protocol (Verde, Arun et al. 2025, after Canetti, Riva, Rothblum 2011), one round per arrow:

1. ``step_descent``: Merkle descent over the two step-digest trees (leaves = state roots of
   steps 0..T) to the first step whose state differs;
2. ``step_leaves``: both reveal the state roots of steps ``s-1`` (agreed) and ``s`` with
   inclusion proofs (if ``s = 0`` the arbiter derives state 0 from the spec and rules);
3. ``graph_open``: both replay step ``s`` and commit to its graph (node count and the final
   ``commit_state`` node, which must output the state root they committed to for ``s``);
   the arbiter checks this against its own shape-only replay of step ``s``;
4. ``graph_descent``: descent over the two graph trees to the first differing node ``k``;
5. ``graph_leaf``: both reveal node ``k``, whose structure must match the arbiter's replay;
6. ``inputs``: both send node ``k``'s inputs with proofs (earlier node outputs, state
   ``s-1`` entries, data samples); then the arbiter recomputes node ``k`` and rules.

A phase's ``check`` judges one party's answer only against that party's own commitments
(``verde.protocol.dispute.checks``); ``advance`` runs once both parties' answers passed and moves
the dispute on (or to its verdict).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from proofs import Descent
from proofs.errors import ProofError
from verde.protocol.dispute import checks, rules
from verde.protocol.dispute.errors import Fault, InvalidEvent
from verde.protocol.dispute.progress import DisputeProgress
from verde.protocol.dispute.recompute import recompute_operator, recompute_state_root
from verde.protocol.dispute.verdict import Verdict
from verde.protocol.graph.nodes import COMMIT_OP, input_refs, node_leaf, ref_name
from verde.protocol.jobs.context import JobContext
from verde.protocol.peers import payloads as p

PARTIES = rules.PARTIES


class Phase(ABC):
    """One phase: its query, the check of one answer, and the transition once both passed."""

    name: ClassVar[str]
    answer_type: ClassVar[type[p.AnswerPayload]]

    @abstractmethod
    def query(self, state: DisputeProgress) -> p.QueryParams:
        """The query both parties are asked in this phase's current round."""

    @abstractmethod
    def check(self, state: DisputeProgress, party: str, answer: Any, blobs: Any,
              blobs_available: bool) -> Any:
        """What the dispute keeps of ``party``'s answer; ``Fault`` if it breaks a rule."""

    @abstractmethod
    def advance(self, state: DisputeProgress, ok: Mapping[str, Any]) -> None:
        """Move on once both answers passed (``ok``: party -> what ``check`` kept)."""


def _descent(state: DisputeProgress) -> Descent:
    if state.descent is None:
        raise AssertionError("a descent phase without a descent")  # the phases set it first
    return state.descent


def _step(state: DisputeProgress) -> int:
    if state.step is None:
        raise AssertionError("a graph phase before the disputed step is known")
    return state.step


def _node(state: DisputeProgress) -> int:
    if state.node is None:
        raise AssertionError("a node phase before the disputed node is known")
    return state.node


def _same_step(answer_step: int, state: DisputeProgress) -> None:
    if answer_step != _step(state):
        raise Fault("malformed", f"the answer is about step {answer_step}, not {state.step}")


def _check_leaf(descent: Descent, party: str, leaf: bytes) -> None:
    try:
        descent.check_leaf(party, leaf)
    except ProofError as exc:
        raise Fault("inconsistent_answer", str(exc)) from exc


class _Descent(Phase):
    """A Merkle descent: both parties reveal the children of the current node; each pair must
    hash to the party's committed parent; the descent goes left where they agree."""

    def check(self, state: DisputeProgress, party: str, answer: Any, blobs: Any,
              blobs_available: bool) -> Any:
        descent = _descent(state)
        return checks.check_children(answer.position, answer.children, descent.position,
                                     descent.current_hashes[PARTIES.index(party)])

    def advance(self, state: DisputeProgress, ok: Mapping[str, Any]) -> None:
        descent = _descent(state)
        descent.record(ok["a"], ok["b"])
        if descent.done:
            self.found(state, descent.leaf_index)

    @abstractmethod
    def found(self, state: DisputeProgress, leaf: int) -> None:
        """The descent reached the first differing leaf."""


class StepDescent(_Descent):
    name = "step_descent"
    answer_type = p.StepChildrenAnswer

    def query(self, state: DisputeProgress) -> p.QueryParams:
        return p.StepChildrenQuery(_descent(state).position)

    def found(self, state: DisputeProgress, leaf: int) -> None:
        state.phase = StepLeaves.name


class StepLeaves(Phase):
    name = "step_leaves"
    answer_type = p.StepLeavesAnswer

    @staticmethod
    def indices(state: DisputeProgress) -> tuple[int, ...]:
        k = _descent(state).leaf_index
        return (0,) if k == 0 else (k - 1, k)

    def query(self, state: DisputeProgress) -> p.QueryParams:
        return p.StepLeavesQuery(self.indices(state))

    def check(self, state: DisputeProgress, party: str, answer: Any, blobs: Any,
              blobs_available: bool) -> Any:
        leaves = checks.check_step_leaves(answer, self.indices(state), state.step_roots[party],
                                          state.spec.steps + 1)
        _check_leaf(_descent(state), party, leaves[_descent(state).leaf_index])
        return leaves

    def advance(self, state: DisputeProgress, ok: Mapping[str, Any]) -> None:
        k = _descent(state).leaf_index
        if k == 0:
            expected = JobContext.from_spec(state.spec).initial_state_root().hex()
            claims = {party: ok[party][0].hex() for party in PARTIES}
            winner, losers = rules.rule_on_value(expected, claims)
            state.finish(Verdict(winner, losers, "initial_state",
                                 ruling={"expected_state_0": expected, "claims": claims}))
            return
        state.step = k
        state.prev_root = ok["a"][k - 1]
        state.claimed = {party: ok[party][k] for party in PARTIES}
        state.phase = GraphOpen.name


class GraphOpen(Phase):
    name = "graph_open"
    answer_type = p.GraphCommitAnswer

    def query(self, state: DisputeProgress) -> p.QueryParams:
        return p.GraphCommitQuery(_step(state))

    def check(self, state: DisputeProgress, party: str, answer: Any, blobs: Any,
              blobs_available: bool) -> Any:
        root, _ = checks.check_graph_commit(answer, _step(state), state.expected(),
                                            state.claimed[party])
        return root

    def advance(self, state: DisputeProgress, ok: Mapping[str, Any]) -> None:
        state.graph_roots = {party: ok[party] for party in PARTIES}
        state.descent = Descent.start(len(state.expected()), ok["a"], ok["b"])
        state.phase = GraphDescent.name


class GraphDescent(_Descent):
    name = "graph_descent"
    answer_type = p.GraphChildrenAnswer

    def query(self, state: DisputeProgress) -> p.QueryParams:
        return p.GraphChildrenQuery(_step(state), _descent(state).position)

    def check(self, state: DisputeProgress, party: str, answer: Any, blobs: Any,
              blobs_available: bool) -> Any:
        _same_step(answer.step, state)
        return super().check(state, party, answer, blobs, blobs_available)

    def found(self, state: DisputeProgress, leaf: int) -> None:
        state.node = leaf
        state.phase = GraphLeaf.name


class GraphLeaf(Phase):
    name = "graph_leaf"
    answer_type = p.GraphLeavesAnswer

    def query(self, state: DisputeProgress) -> p.QueryParams:
        return p.GraphLeavesQuery(_step(state), (_node(state),))

    def check(self, state: DisputeProgress, party: str, answer: Any, blobs: Any,
              blobs_available: bool) -> Any:
        _same_step(answer.step, state)
        if len(answer.leaves) != 1:
            raise Fault("malformed", "expected exactly one graph leaf")
        k = _node(state)
        node = checks.check_node_leaf(answer.leaves[0], k, state.graph_roots[party],
                                      n_nodes=len(state.expected()),
                                      expected=state.expected()[k])  # fmt: skip
        _check_leaf(_descent(state), party, node_leaf(node))
        return node

    def advance(self, state: DisputeProgress, ok: Mapping[str, Any]) -> None:
        state.nodes = {party: ok[party] for party in PARTIES}
        state.phase = Inputs.name


class Inputs(Phase):
    name = "inputs"
    answer_type = p.NodeInputsAnswer

    def query(self, state: DisputeProgress) -> p.QueryParams:
        return p.NodeInputsQuery(_step(state), _node(state))

    def check(self, state: DisputeProgress, party: str, answer: Any, blobs: Any,
              blobs_available: bool) -> Any:
        step, k = _step(state), _node(state)
        ctx = JobContext.from_spec(state.spec)
        node = state.expected_node(k)
        checked = checks.check_node_inputs(answer, blobs if blobs_available else None,
                                           checks.InputContext(
            step=step, node=k, refs=input_refs(node), graph_root=state.graph_roots[party],
            expected=state.expected(), prev_state_root=state.prev_root or b"",
            dataset_root=ctx.dataset.root, n_samples=ctx.dataset.n_samples,
            batch_indices=ctx.batch_indices(step), need_tensors=node.op != COMMIT_OP))
        state.inputs.setdefault(party, checked)
        return {ref: entry.digest for ref, entry in checked.items()}

    def advance(self, state: DisputeProgress, ok: Mapping[str, Any]) -> None:
        step, k = _step(state), _node(state)
        node = state.expected_node(k)
        inputs = state.inputs["a"]
        digests = {ref: entry.digest for ref, entry in inputs.items()}
        if node.op == COMMIT_OP:
            recomputed = recompute_state_root(JobContext.from_spec(state.spec),
                                              node.args["entries"], step, digests)
            reason = "recomputed_commit"
        elif inputs and any(entry.tensor is None for entry in inputs.values()):
            if state.trusted_recomputation is None:
                raise InvalidEvent("input tensors are needed to recompute the operator")
            recomputed, reason = state.trusted_recomputation, "recomputed_operator"
        else:
            tensors = {ref: entry.tensor for ref, entry in inputs.items()
                       if entry.tensor is not None}
            recomputed = recompute_operator(state.spec.backend, node.op, node.args, tensors)
            reason = "recomputed_operator"
        claims = {party: tuple(state.nodes[party].output_digests) for party in PARTIES}
        winner, losers = rules.rule_on_value(tuple(recomputed), claims)
        ruling = {"step": step, "node": k, "op": node.op,
                  "nodes": {party: state.nodes[party].to_json() for party in PARTIES},
                  "input_digests": {ref_name(ref): d for ref, d in digests.items()},
                  "recomputed": [d.hex() for d in recomputed]}
        state.finish(Verdict(winner, losers, reason, ruling=ruling))


PHASES: dict[str, Phase] = {
    phase.name: phase
    for phase in (StepDescent(), StepLeaves(), GraphOpen(), GraphDescent(), GraphLeaf(), Inputs())
}

