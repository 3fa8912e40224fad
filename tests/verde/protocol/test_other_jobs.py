"""Disputes on inference jobs, on the CNN (torch backend) and on the GPT."""

from __future__ import annotations

import pytest

from verde.protocol.dispute.driver import run_dispute
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.peers import LocalPeer
from verde.protocol.provider.provider import Provider

from .conftest import key, tiny_spec


def _dispute(spec, plan: FaultPlan):
    honest = Provider(key("o-honest"))
    cheater = CheatingProvider(key("o-cheater"), plan=plan)
    honest.submit(spec)
    cheater.submit(spec)
    peers = {"a": LocalPeer(cheater), "b": LocalPeer(honest)}
    state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    return run_dispute(state, peers)


def test_inference_job_dispute() -> None:
    spec = tiny_spec(kind="infer", optimizer={}, steps=8)
    verdict = _dispute(spec, FaultPlan("corrupt_op", step=6, node=1))
    assert verdict.winner == "b" and verdict.reason == "recomputed_operator"


def test_cnn_dispute_on_the_torch_backend() -> None:
    spec = tiny_spec(program="cnn", config={"channels": 2}, backend="torch", steps=6,
                     batch_size=4)
    verdict = _dispute(spec, FaultPlan("corrupt_op", step=4, node=3))
    assert verdict.winner == "b" and verdict.reason == "recomputed_operator"


@pytest.mark.slow
def test_gpt_dispute() -> None:
    spec = tiny_spec(program="gpt", dataset={"name": "tokens", "n_sequences": 32, "seq_len": 8,
                                             "vocab": 16},
                     config={"vocab": 16, "d_model": 8, "heads": 2, "layers": 1}, steps=5,
                     batch_size=4)
    verdict = _dispute(spec, FaultPlan("corrupt_op", step=3, node=40))
    assert verdict.winner == "b" and verdict.reason == "recomputed_operator"
