"""Garbled answers: the state machine blames their sender and never crashes or blames the
other party."""

from __future__ import annotations

import copy
import random
from typing import Any

from proofs import sign_message
from verde.protocol.dispute.driver import answer_event
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.peers import Answer

from .conftest import key


def _mutate(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict) and value:
        k = rng.choice(sorted(value))
        choice = rng.random()
        if choice < 0.2:
            return {kk: v for kk, v in value.items() if kk != k}
        return {**value, k: _mutate(value[k], rng)}
    if isinstance(value, list) and value:
        i = rng.randrange(len(value))
        if rng.random() < 0.2:
            return value[:i] + value[i + 1:]
        return [*value[:i], _mutate(value[i], rng), *value[i + 1:]]
    return rng.choice([None, 0, -1, 2**70, "zz", "00" * 32, [], {}, {"node": -1, "out": 0},
                       True, 1.5])


def test_garbled_answers_are_the_senders_fault(spec, honest) -> None:
    rng = random.Random(5)
    cheater_key = key("fuzzer")
    cheater = CheatingProvider(cheater_key, plan=FaultPlan("corrupt_op", step=6, node=1))
    cheater.submit(spec)
    for trial in range(40):
        state = DisputeState(spec, honest.result(spec.job_id), cheater.result(spec.job_id))
        target_round = rng.randint(1, 14)
        while not state.done:
            for q in state.next_queries():
                provider = honest if q.party == "a" else cheater
                answer = provider.answer(q)
                if q.party == "b" and state.round == target_round:
                    payload = _mutate(copy.deepcopy(answer.signed.payload), rng)
                    if not isinstance(payload, dict):
                        payload = {"garbage": payload}
                    answer = Answer(sign_message(cheater_key, q.context, payload), answer.blobs)
                state.apply(answer_event(q, answer))
        assert state.verdict.winner == "a", (trial, state.verdict.to_json())
