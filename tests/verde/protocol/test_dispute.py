"""Disputes: the honest provider wins against every fault in the catalogue, in bounded rounds,
with the arbiter executing exactly one operator; states resume from JSON."""

from __future__ import annotations

import json

import pytest

from verde.protocol.dispute.driver import DisputeStats, run_dispute
from verde.protocol.dispute.errors import DisputeFinished, InvalidEvent, NoDisputeError
from verde.protocol.dispute.recompute import OPS_EXECUTED
from verde.protocol.dispute.rules import max_rounds
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.graph.execution import expected_structure
from verde.protocol.jobs.context import JobContext
from verde.protocol.peers import LocalPeer

from .conftest import key

EXPECTED = {
    ("corrupt_op", None): "recomputed_operator",
    ("corrupt_state", None): "inconsistent_answer",
    ("wrong_final", None): "invalid_result",
    ("skip_step", None): "inconsistent_answer",
    ("reorder_steps", None): "recomputed_operator",
    ("wrong_data", None): "recomputed_operator",
    ("wrong_init", None): "initial_state",
    ("corrupt_op", "lie_children"): "inconsistent_answer",
    ("corrupt_op", "equivocate"): "equivocation",
    ("corrupt_op", "refuse"): "missed_deadline",
    ("corrupt_op", "wrong_input"): "bad_input",
    ("corrupt_op", "substitute_input"): "bad_input",
    ("corrupt_op", "wrong_graph_count"): "wrong_graph",
    ("corrupt_op", "insert_node"): "wrong_graph",
    ("corrupt_op", "drop_node"): "wrong_graph",
    ("corrupt_op", "swap_nodes"): "wrong_graph",
    ("corrupt_op", "wrong_op"): "wrong_graph",
}
QUERIES = {"lie_children": ["step_children", "graph_children"],
           "equivocate": ["step_children", "graph_children"],
           "refuse": ["step_leaves", "graph_commit", "graph_leaves", "node_inputs"]}


def _cases() -> list[FaultPlan]:
    plans = []
    for (compute, answer) in EXPECTED:
        for query in QUERIES.get(answer or "", [None]):
            plans.append(FaultPlan(compute=compute, step=5, node=1, answer=answer, query=query))
    return plans


def _code(verdict) -> str:
    if verdict.reason == "fault":
        (fault,) = verdict.faults.values()
        return fault["code"]
    return verdict.reason


def dispute(spec, first, second, *, retransmit: bool = True):
    peers = {"a": LocalPeer(first), "b": LocalPeer(second)}
    state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    stats = DisputeStats()
    before = OPS_EXECUTED["count"]
    verdict = run_dispute(state, peers, retransmit=retransmit, stats=stats)
    return state, verdict, stats, OPS_EXECUTED["count"] - before


@pytest.mark.parametrize("plan", _cases(), ids=lambda p: f"{p.compute}-{p.answer}-{p.query}")
def test_honest_wins_against_each_fault(spec, honest, plan: FaultPlan) -> None:
    cheater = CheatingProvider(key("cheater"), "cheater", plan=plan)
    cheater.submit(spec)
    n_nodes = len(expected_structure(JobContext.from_spec(spec), 5))
    for honest_side in ("a", "b"):
        pair = (honest, cheater) if honest_side == "a" else (cheater, honest)
        _, verdict, stats, ops = dispute(spec, *pair)
        assert verdict.winner == honest_side
        assert verdict.losers == (("b",) if honest_side == "a" else ("a",))
        assert _code(verdict) == EXPECTED[(plan.compute, plan.answer)]
        assert stats.rounds <= max_rounds(spec.steps, n_nodes)
        assert ops == (1 if verdict.reason == "recomputed_operator" else 0)


def test_two_honest_providers_cannot_open_a_dispute(spec, honest, honest2) -> None:
    with pytest.raises(NoDisputeError):
        DisputeState(spec, honest.result(spec.job_id), honest2.result(spec.job_id))


def test_both_cheating_differently_nobody_honest_loses(spec) -> None:
    early = CheatingProvider(key("early"), plan=FaultPlan("corrupt_op", step=3, node=1))
    late = CheatingProvider(key("late"), plan=FaultPlan("corrupt_op", step=8, node=1))
    early.submit(spec)
    late.submit(spec)
    _, verdict, _, _ = dispute(spec, early, late)
    assert "a" in verdict.losers  # the earlier deviation is caught first
    both = CheatingProvider(key("both"), plan=FaultPlan("corrupt_op", step=3, node=5))
    both.submit(spec)
    _, verdict, _, _ = dispute(spec, early, both)
    assert verdict.losers == ("a", "b") or verdict.losers in (("a",), ("b",))


def test_state_resumes_from_json_mid_dispute(spec, honest) -> None:
    cheater = CheatingProvider(key("resume"), plan=FaultPlan("corrupt_op", step=7, node=2))
    cheater.submit(spec)
    peers = {"a": LocalPeer(honest), "b": LocalPeer(cheater)}
    state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    while state.round < 9:
        for q in state.next_queries():
            from verde.protocol.dispute.driver import answer_event

            state.apply(answer_event(q, peers[q.party].answer(q)))
    saved = json.loads(json.dumps(state.to_json()))
    resumed = DisputeState.from_json(saved)
    assert resumed.round == state.round and resumed.phase == state.phase
    verdict = run_dispute(resumed, peers)
    assert verdict.winner == "a"
    with pytest.raises(DisputeFinished):
        resumed.apply({"type": "timeout", "party": "b", "round": resumed.round})


def test_timeouts_are_events_and_bad_events_are_rejected(spec, honest) -> None:
    cheater = CheatingProvider(key("slow"), plan=FaultPlan("corrupt_op", step=2, node=1))
    cheater.submit(spec)
    state = DisputeState(spec, honest.result(spec.job_id), cheater.result(spec.job_id))
    with pytest.raises(InvalidEvent):
        state.apply({"type": "timeout", "party": "c", "round": 1})
    with pytest.raises(InvalidEvent):
        state.apply({"type": "timeout", "party": "a", "round": 7})
    q = next(q for q in state.next_queries() if q.party == "a")
    from verde.protocol.dispute.driver import answer_event

    state.apply(answer_event(q, honest.answer(q)))
    state.apply({"type": "timeout", "party": "b", "round": 1})
    assert state.verdict.winner == "a" and state.verdict.faults["b"]["code"] == "missed_deadline"


def test_a_slow_peer_misses_its_deadline(spec, honest) -> None:
    cheater = CheatingProvider(key("slowpoke"), plan=FaultPlan("corrupt_op", step=2, node=1))
    cheater.submit(spec)
    slow = LocalPeer(cheater, delay=lambda q: 120.0 if q.kind == "graph_commit" else 0.1)
    state = DisputeState(spec, honest.result(spec.job_id), cheater.result(spec.job_id),
                         deadline_s=60.0)
    verdict = run_dispute(state, {"a": LocalPeer(honest), "b": slow})
    assert verdict.winner == "a" and verdict.faults["b"]["code"] == "missed_deadline"
    fast = LocalPeer(cheater, delay=lambda q: 1.0)
    state = DisputeState(spec, honest.result(spec.job_id), cheater.result(spec.job_id))
    assert run_dispute(state, {"a": LocalPeer(honest), "b": fast}).reason == "recomputed_operator"


def test_both_missing_the_deadline_both_lose(spec, honest) -> None:
    cheater = CheatingProvider(key("both-late"), plan=FaultPlan("corrupt_op", step=2, node=1))
    cheater.submit(spec)
    state = DisputeState(spec, honest.result(spec.job_id), cheater.result(spec.job_id))
    state.apply({"type": "timeout", "party": "a", "round": 1})
    assert not state.done
    state.apply({"type": "timeout", "party": "b", "round": 1})
    assert state.verdict.winner is None and state.verdict.losers == ("a", "b")


@pytest.mark.parametrize(("steps", "cheat_step"), [(1, 1), (5, 5), (5, 1)])
def test_edges_of_the_step_tree(steps: int, cheat_step: int) -> None:
    from .conftest import tiny_spec

    spec = tiny_spec(steps=steps, checkpoint_interval=2)
    honest = CheatingProvider(key("edge-h"), plan=FaultPlan(compute=None))
    cheater = CheatingProvider(key("edge-c"), plan=FaultPlan("corrupt_op", step=cheat_step,
                                                              node=1))
    honest.submit(spec)
    cheater.submit(spec)
    _state, verdict, _, ops = dispute(spec, cheater, honest)
    assert verdict.winner == "b" and verdict.ruling["step"] == cheat_step and ops == 1
