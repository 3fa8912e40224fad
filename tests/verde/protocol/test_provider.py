"""The provider: signed results, checkpoint replays, and answers that verify."""

from __future__ import annotations

import pytest
import torch

from proofs import NodePosition, node_hash
from proofs.merkle import InclusionProof, verify_inclusion
from verde.protocol.peers import LocalPeer, Query, TensorBlob
from verde.protocol.peers.errors import PeerError
from verde.protocol.peers.result import InvalidResult, check_result
from verde.protocol.provider.checkpoints import CheckpointStore
from verde.protocol.provider.errors import UnknownQueryError
from verde.protocol.provider.provider import Provider

from .conftest import key


def test_result_is_signed_and_self_consistent(honest: Provider, spec) -> None:
    claim = check_result(honest.result(spec.job_id), spec.job_id, spec.steps)
    record = honest.jobs[spec.job_id]
    assert claim.step_root == record.tree.root and claim.final_state == record.step_roots[-1]
    with pytest.raises(InvalidResult, match="steps"):
        check_result(honest.result(spec.job_id), spec.job_id, spec.steps + 1)
    with pytest.raises(InvalidResult):
        check_result(honest.result(spec.job_id), "0" * 64, spec.steps)


def test_two_honest_runs_agree_and_replays_match(honest: Provider, honest2: Provider,
                                                 spec) -> None:
    assert honest.result(spec.job_id).payload == honest2.result(spec.job_id).payload
    record = honest.jobs[spec.job_id]
    fresh = Provider(key("replayer"))
    fresh.run(spec)
    again = fresh.jobs[spec.job_id]
    again.states = {}
    for step in (3, 5, 12):  # 3 and 5 are replayed from checkpoints 0 and 4
        from proofs.state import StateCommitment

        root = StateCommitment.from_tensors(fresh.state_at(again, step)).root
        assert root == record.step_roots[step]


def test_answers_verify_against_commitments(honest: Provider, spec) -> None:
    record = honest.jobs[spec.job_id]
    peer = LocalPeer(honest)
    n = spec.steps + 1
    q = Query(spec.job_id, "d", 1, "step_children", {"position": [0, n]}, "a")
    left, right = (bytes.fromhex(h) for h in peer.answer(q).signed.payload["children"])
    assert node_hash(left, right) == record.tree.root
    q = Query(spec.job_id, "d", 2, "step_leaves", {"indices": [3]}, "a")
    leaf = peer.answer(q).signed.payload["leaves"][0]
    verify_inclusion(record.tree.root, bytes.fromhex(leaf["data"]), 3, n,
                     InclusionProof.from_json(leaf["proof"]))
    q = Query(spec.job_id, "d", 3, "graph_commit", {"step": 4}, "a")
    commit = peer.answer(q).signed.payload
    assert commit["final"]["node"]["output_digests"] == [record.step_roots[4].hex()]
    q = Query(spec.job_id, "d", 4, "node_inputs", {"step": 4, "node": 1}, "a")
    answer = peer.answer(q)
    assert answer.blobs and peer.bytes_received > 0
    with pytest.raises(UnknownQueryError):
        honest.answer(Query(spec.job_id, "d", 5, "graph_commit", {"step": 99}, "a"))
    with pytest.raises(UnknownQueryError):
        honest.answer(Query(spec.job_id, "d", 5, "gossip", {}, "a"))
    with pytest.raises(UnknownQueryError):
        honest.answer(Query(spec.job_id, "d", 5, "step_children",
                            {"position": NodePosition(0, 99).to_json()}, "a"))


def test_tensor_blob_roundtrip_and_errors() -> None:
    for t in (torch.randn(3, 4), torch.arange(6).reshape(2, 3), torch.randn(5).bfloat16(),
              torch.randn(4, 3).t()):
        blob = TensorBlob.from_json(TensorBlob.from_tensor(t).to_json())
        assert torch.equal(blob.to_tensor(), t)
    with pytest.raises(PeerError, match="do not fit"):
        TensorBlob("float32", (3,), b"\0" * 8).to_tensor()
    with pytest.raises(PeerError, match="unknown dtype"):
        TensorBlob("complex64", (1,), b"\0" * 8).to_tensor()


def test_checkpoint_store_on_disk(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(0, {"w": torch.ones(2)})
    store.save(5, {"w": torch.zeros(2)})
    assert store.nearest(4) == 0 and store.nearest(7) == 5
    assert torch.equal(store.load(5)["w"], torch.zeros(2))
    with pytest.raises(KeyError):
        CheckpointStore().nearest(3)
