"""Randomized campaign: seeded random fault placement; the honest provider always wins."""

from __future__ import annotations

import random

import pytest

from verde.protocol.dispute.driver import DisputeStats, run_dispute
from verde.protocol.dispute.errors import NoDisputeError
from verde.protocol.dispute.recompute import OPS_EXECUTED
from verde.protocol.dispute.rules import max_rounds
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults import ANSWER_FAULTS, COMPUTE_FAULTS, CheatingProvider, FaultPlan
from verde.protocol.graph.execution import expected_structure
from verde.protocol.jobs.context import JobContext
from verde.protocol.peers import LocalPeer
from verde.protocol.provider.provider import Provider

from .conftest import key, tiny_spec


def _random_plan(rng: random.Random, seed: int) -> FaultPlan:
    compute = rng.choice([*COMPUTE_FAULTS, "corrupt_op", "corrupt_op", "corrupt_op"])
    answer = rng.choice([None, None, *ANSWER_FAULTS]) if compute == "corrupt_op" else None
    query = None
    if answer in ("lie_children", "equivocate"):
        query = rng.choice(["step_children", "graph_children"])
    elif answer == "refuse":
        query = rng.choice(["step_children", "step_leaves", "graph_commit", "graph_children",
                            "graph_leaves", "node_inputs"])
    return FaultPlan(compute=compute, answer=answer, query=query, seed=seed)


def run_campaign(spec, honest: Provider, n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    n_nodes = len(expected_structure(JobContext.from_spec(spec), 1))
    counts = {"disputes": 0, "no_effect": 0}
    for i in range(n):
        plan = _random_plan(rng, seed * 100_000 + i)
        cheater = CheatingProvider(key(f"campaign-{i % 4}"), plan=plan)
        cheater.submit(spec)
        honest_side = rng.choice("ab")
        pair = (honest, cheater) if honest_side == "a" else (cheater, honest)
        peers = {"a": LocalPeer(pair[0]), "b": LocalPeer(pair[1])}
        try:
            state = DisputeState(spec, peers["a"].result(spec.job_id),
                                 peers["b"].result(spec.job_id))
        except NoDisputeError:
            # the flipped bit did not reach the state (e.g. the loss value itself): the
            # cheater's result is then exactly the honest one
            assert (cheater.result(spec.job_id).payload == honest.result(spec.job_id).payload)
            counts["no_effect"] += 1
            continue
        before = OPS_EXECUTED["count"]
        stats = DisputeStats()
        verdict = run_dispute(state, peers, retransmit=True, stats=stats)
        assert verdict.winner == honest_side, (plan, verdict.to_json())
        assert honest_side not in verdict.losers
        assert stats.rounds <= max_rounds(spec.steps, n_nodes)
        ops = OPS_EXECUTED["count"] - before
        assert ops == (1 if verdict.reason == "recomputed_operator" else 0)
        counts["disputes"] += 1
    return counts


def test_random_campaign_fast(spec, honest) -> None:
    counts = run_campaign(spec, honest, 24, seed=1)
    assert counts["disputes"] >= 18


@pytest.mark.slow
def test_random_campaign_hundreds(spec, honest) -> None:
    counts = run_campaign(spec, honest, 300, seed=2)
    assert counts["disputes"] >= 250


@pytest.mark.slow
def test_random_campaign_gpt() -> None:
    spec = tiny_spec(program="gpt", dataset={"name": "tokens", "n_sequences": 32, "seq_len": 8,
                                             "vocab": 16},
                     config={"vocab": 16, "d_model": 8, "heads": 2, "layers": 1}, steps=6,
                     batch_size=4, checkpoint_interval=3)
    honest = Provider(key("gpt-honest"))
    honest.submit(spec)
    counts = run_campaign(spec, honest, 20, seed=3)
    assert counts["disputes"] >= 12
