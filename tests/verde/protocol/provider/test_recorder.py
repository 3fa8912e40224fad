"""The state recorder hashes a tensor again only when it is not the one the previous state held
unchanged: parameters passed through inference and generate steps are hashed once per job, and
a tensor written in place is always hashed again."""

from __future__ import annotations

import torch

from proofs.state import StateCommitment
from verde.protocol.provider.checkpoints import CheckpointStore
from verde.protocol.provider.recorder import StateRecorder


def _roots(states: list[dict[str, torch.Tensor]]) -> list[bytes]:
    with StateRecorder(CheckpointStore(None)) as recorder:
        for step, state in enumerate(states):
            recorder.record(step, state, checkpoint=False)
        recorder.finish()
    return recorder.roots


def test_unchanged_tensors_keep_their_digest_and_the_roots_are_the_plain_ones() -> None:
    weight = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    states = [{"param/w": weight, "out": torch.full((2,), float(s))} for s in range(4)]
    assert _roots(states) == [StateCommitment.from_tensors(s).root for s in states]


def test_a_tensor_written_in_place_is_hashed_again() -> None:
    weight = torch.zeros(3, 4)
    first = {"param/w": weight}
    expected_first = StateCommitment.from_tensors(first).root
    with StateRecorder(CheckpointStore(None)) as recorder:
        recorder.record(0, first, checkpoint=False)
        recorder.finish()
        weight.add_(1.0)  # the same object, new values: its version counter moved
        recorder.record(1, {"param/w": weight}, checkpoint=False)
        recorder.finish()
    assert recorder.roots[0] == expected_first
    assert recorder.roots[1] == StateCommitment.from_tensors({"param/w": weight}).root
    assert recorder.roots[1] != expected_first
    # an equal tensor that is another object is hashed (to the same digest)
    assert _roots([{"w": torch.ones(2)}, {"w": torch.ones(2)}])[0] == _roots(
        [{"w": torch.ones(2)}])[0]
