"""Checkpoints are stored by content: an entry an earlier checkpoint stored with the same digest
is pointed to, not stored again, and every checkpoint still loads whole, bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from proofs.digest import tensor_digest
from verde.protocol.provider.checkpoints import CheckpointStore


def _digests(state: dict[str, torch.Tensor]) -> dict[str, bytes]:
    return {name: tensor_digest(t) for name, t in state.items()}


def _states() -> list[dict[str, torch.Tensor]]:
    weights = torch.arange(4096, dtype=torch.float32).reshape(64, 64)
    return [{"param/w": weights, "out": torch.full((4,), float(s))} for s in range(3)]


@pytest.mark.parametrize("on_disk", [False, True], ids=["memory", "directory"])
def test_unchanged_entries_are_stored_once_and_every_checkpoint_loads_whole(
        tmp_path: Path, on_disk: bool) -> None:
    store = CheckpointStore(tmp_path / "ckpt" if on_disk else None)
    states = _states()
    for step, state in enumerate(states):
        store.save(step * 10, state, _digests(state))
    assert store.steps == [0, 10, 20]
    assert store.stored_bytes(10) < 1024 < 64 * 64 * 4 < store.stored_bytes(0)
    for step, state in zip(store.steps, states, strict=True):
        loaded = store.load(step)
        assert set(loaded) == set(state)
        assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert store.nearest(15) == 10


def test_without_digests_or_with_changed_values_everything_is_stored(tmp_path: Path) -> None:
    store = CheckpointStore(None)
    states = _states()
    store.save(0, states[0])
    store.save(1, states[1])  # no digests: nothing can be shared
    assert store.stored_bytes(1) > 64 * 64 * 4
    changed = {**states[2], "param/w": states[2]["param/w"] + 1}
    store.save(2, changed, _digests(changed))
    store.save(3, states[0], _digests(states[0]))  # back to the first values
    assert store.stored_bytes(2) > 64 * 64 * 4 and store.stored_bytes(3) > 64 * 64 * 4
    assert torch.equal(store.load(2)["param/w"], changed["param/w"])
    assert torch.equal(store.load(3)["param/w"], states[0]["param/w"])
    with pytest.raises(KeyError, match="no checkpoint at or before step -1"):
        store.nearest(-1)


def test_a_generate_job_keeps_its_weights_once(tmp_path: Path) -> None:
    from proofs import SigningKey
    from verde.protocol.provider.provider import Provider

    from ..generate_jobs import GREEDY, generate_spec

    spec = generate_spec(tmp_path, "llama", GREEDY, checkpoint_interval=4)
    provider = Provider(SigningKey.from_seed(b"k" * 32), "checkpoints")
    provider.submit(spec)
    record = provider.jobs[spec.job_id]
    steps = record.checkpoints.steps
    assert len(steps) > 3
    params = sum(t.numel() * 4 for n, t in record.checkpoints.load(0).items()
                 if n.startswith("param/"))
    assert all(record.checkpoints.stored_bytes(s) < params / 2 for s in steps[1:])
    # and a replay from a later checkpoint still gives the committed states
    from proofs.state import StateCommitment

    for step in (steps[-2] + 1, spec.steps - 1):
        replayed = provider.state_at(record, step)
        assert StateCommitment.from_tensors(replayed).root == record.step_roots[step]
