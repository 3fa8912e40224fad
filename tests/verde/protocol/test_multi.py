"""N providers: group by result; disputes between groups decide; honest providers never lose."""

from __future__ import annotations

from verde.protocol.dispute.multi import resolve
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.peers import LocalPeer
from verde.protocol.provider.provider import Provider

from .conftest import key


def test_three_providers_one_cheater(spec, honest, honest2) -> None:
    cheater = CheatingProvider(key("c3"), "cheater", plan=FaultPlan("corrupt_op", step=4, node=1))
    cheater.submit(spec)
    peers = {"h1": LocalPeer(honest), "c": LocalPeer(cheater), "h2": LocalPeer(honest2)}
    res = resolve(spec, peers)
    assert res.honest == ["h1", "h2"] and res.cheaters == ["c"]
    assert len(res.groups) == 2 and len(res.disputes) == 1  # m - 1 disputes


def test_two_colluders_against_one_honest(spec, honest) -> None:
    plan = FaultPlan("corrupt_op", step=6, node=3)
    c1 = CheatingProvider(key("col-1"), "c1", plan=plan)
    c2 = CheatingProvider(key("col-2"), "c2", plan=plan)
    c1.submit(spec)
    c2.submit(spec)
    peers = {"c1": LocalPeer(c1), "c2": LocalPeer(c2), "h": LocalPeer(honest)}
    res = resolve(spec, peers)
    assert res.groups == [["c1", "c2"], ["h"]]
    assert res.honest == ["h"] and res.cheaters == ["c1", "c2"]
    assert res.accepted == (honest.result(spec.job_id).payload["step_root"],
                            honest.result(spec.job_id).payload["final_state"])


def test_many_different_cheaters_and_a_saboteur_in_the_honest_group(spec, honest) -> None:
    cheaters = {
        f"c{i}": CheatingProvider(key(f"many-{i}"), f"c{i}", plan=plan)
        for i, plan in enumerate([FaultPlan("corrupt_op", step=2, node=1),
                                  FaultPlan("wrong_final"),
                                  FaultPlan("reorder_steps", step=9)])
    }
    # copies the honest result but refuses to defend it in disputes
    plan = FaultPlan(compute=None, answer="refuse", query="step_children")
    saboteur = CheatingProvider(key("saboteur"), "s", plan=plan)
    for p in (*cheaters.values(), saboteur):
        p.submit(spec)
    peers = {"s": LocalPeer(saboteur), **{n: LocalPeer(p) for n, p in cheaters.items()},
             "h": LocalPeer(honest)}
    res = resolve(spec, peers)
    assert res.honest == ["h"]
    assert set(res.cheaters) == {"s", "c0", "c1", "c2"}
    assert "invalid result" in res.reasons["c1"]


def test_all_agree_means_no_dispute(spec, honest, honest2) -> None:
    res = resolve(spec, {"a": LocalPeer(honest), "b": LocalPeer(honest2)})
    assert res.disputes == [] and res.honest == ["a", "b"] and res.cheaters == []
    assert isinstance(honest, Provider)
