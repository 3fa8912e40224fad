"""Typed dispute messages: every kind round-trips through JSON, and reading is strict."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from proofs import SigningKey
from verde.protocol.peers import LocalPeer
from verde.protocol.peers import payloads as p
from verde.protocol.peers.errors import MalformedMessage
from verde.protocol.peers.messages import Query
from verde.protocol.provider.provider import Provider

from .conftest import tiny_spec


@pytest.fixture(scope="module")
def answers() -> dict[str, dict[str, Any]]:
    """One real answer of every kind, as the honest provider signs it."""
    spec = tiny_spec(steps=4, checkpoint_interval=2)
    provider = Provider(SigningKey.from_seed(b"\5" * 32), "p")
    provider.submit(spec)
    peer = LocalPeer(provider)
    queries = {
        "step_children": {"position": [0, 5]},
        "step_leaves": {"indices": [1, 2]},
        "graph_commit": {"step": 2},
        "graph_children": {"step": 2, "position": [0, 64]},
        "graph_leaves": {"step": 2, "indices": [3]},
        "node_inputs": {"step": 2, "node": 3},
    }
    return {kind: peer.answer(Query(spec.job_id, "d", 1, kind, params)).signed.payload
            for kind, params in queries.items()}


@pytest.mark.parametrize("kind", p.ALL_KINDS)
def test_every_answer_kind_round_trips(answers: dict[str, dict[str, Any]], kind: str) -> None:
    parsed = p.parse_answer(kind, answers[kind])
    assert kind == type(parsed).KIND
    assert parsed.to_json() == answers[kind]
    assert p.parse_answer(kind, parsed.to_json()) == parsed


def test_node_inputs_carry_every_source(answers: dict[str, dict[str, Any]]) -> None:
    parsed = p.parse_answer("node_inputs", answers["node_inputs"])
    assert isinstance(parsed, p.NodeInputsAnswer)
    kinds = {type(entry) for entry in parsed.inputs}
    assert kinds <= {p.NodeOutputInput, p.StateInput, p.BatchInput}
    assert kinds  # node 3 of an MLP step reads something


def _mutations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for key, value in doc.items():
        extra = copy.deepcopy(doc)
        extra["unexpected"] = 1
        out.append(("extra field", extra))
        missing = copy.deepcopy(doc)
        del missing[key]
        out.append((f"missing {key}", missing))
        wrong = copy.deepcopy(doc)
        wrong[key] = True if not isinstance(value, bool) else "yes"
        out.append((f"{key} as a bool", wrong))
    return out


@pytest.mark.parametrize("kind", p.ALL_KINDS)
def test_a_missing_extra_or_mistyped_field_is_malformed(answers: dict[str, dict[str, Any]],
                                                        kind: str) -> None:
    for what, doc in _mutations(answers[kind]):
        with pytest.raises(MalformedMessage):
            p.parse_answer(kind, doc)
            pytest.fail(f"{kind}: {what} was accepted")


@pytest.mark.parametrize(("kind", "params"), [
    ("step_children", {"position": [0, 5]}),
    ("step_leaves", {"indices": [0, 3]}),
    ("graph_commit", {"step": 1}),
    ("graph_children", {"step": 1, "position": [2, 4]}),
    ("graph_leaves", {"step": 1, "indices": [7]}),
    ("node_inputs", {"step": 2, "node": 0}),
])
def test_queries_round_trip_and_refuse_bad_params(kind: str, params: dict[str, Any]) -> None:
    query = p.parse_query(kind, params)
    assert query.to_json() == params
    for key in params:
        bad = dict(params)
        bad[key] = -1
        with pytest.raises(MalformedMessage):
            p.parse_query(kind, bad)
    with pytest.raises(MalformedMessage, match="unknown query kind"):
        p.parse_query("gossip", params)


def test_refs_and_hashes_are_read_strictly() -> None:
    from verde.protocol.peers import fields

    assert fields.ref({"node": 3, "out": 0}, "x") == ("node", 3, 0)
    assert fields.ref({"leaf": "param/w"}, "x") == ("leaf", "param/w")
    for bad in ({"node": 3}, {"node": True, "out": 0}, {"leaf": 3}, {"leaf": "a", "out": 0}, []):
        with pytest.raises(MalformedMessage, match="not a tensor reference"):
            fields.ref(bad, "x")
    with pytest.raises(MalformedMessage):
        fields.digest("AB" * 32, "upper-case hex")
    with pytest.raises(MalformedMessage):
        fields.digest("ab" * 31, "short")


def test_a_query_envelope_is_read_strictly() -> None:
    good = {"job_id": "j", "dispute_id": "d", "round": 1, "kind": "graph_commit",
            "params": {"step": 1}}
    assert Query.from_json(good).round == 1
    for key, value in (("round", 0), ("round", True), ("params", []), ("kind", ""),
                       ("deadline_s", float("nan")), ("party", 7), ("extra", 1)):
        with pytest.raises(MalformedMessage):
            Query.from_json({**good, key: value})
