"""Coded training on scikit-learn's digits reaches the uncoded run's exact final state.

Partition gradients run under repops (the objective's default), so every replica gets the same
bits whichever thread or machine computes it; plain torch would not promise that.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from proofs.digest import tensor_digest
from verde.coding import (
    Coordinator,
    FractionalRepetitionCode,
    InProcessWorker,
    RecomputingReferee,
    ReplicatedGroups,
)
from verde.coding.training import PartitionedObjective, train_coded, train_uncoded


def _objective(n_partitions: int) -> tuple[PartitionedObjective, dict[str, torch.Tensor]]:
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    loss = nn.CrossEntropyLoss(reduction="sum")
    obj = PartitionedObjective(model, loss, x, y, batch_size=60, n_partitions=n_partitions)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    return obj, params


def _digest(params: dict[str, torch.Tensor]) -> bytes:
    return tensor_digest(torch.cat([p.reshape(-1) for p in params.values()]))


def test_fractional_coded_training_matches_uncoded_bits_despite_stragglers() -> None:
    obj, params = _objective(3)
    reference = train_uncoded(obj, params, steps=20, lr=0.1)
    rng = np.random.default_rng(5)
    slow = {(t, w) for t in range(20) for w in rng.choice(6, size=1)}
    workers = [InProcessWorker(obj.partition_gradient,
                               delay=lambda step, w=w: 0.05 if (step, w) in slow else 0.0)
               for w in range(6)]
    with Coordinator(FractionalRepetitionCode(6, 1), workers) as coord:
        final, outcomes = train_coded(obj, coord, params, steps=20, lr=0.1)
    assert _digest(final) == _digest(reference)
    assert any(o.stragglers for o in outcomes)


def test_a_byzantine_replica_is_corrected_and_training_stays_exact() -> None:
    obj, params = _objective(2)
    reference = train_uncoded(obj, params, steps=5, lr=0.1)

    def flip(step: int, g: torch.Tensor) -> torch.Tensor:
        bad = g.clone()
        bad[0] = torch.nextafter(bad[0], torch.tensor(np.inf))
        return bad

    workers = [InProcessWorker(obj.partition_gradient) for _ in range(6)]
    workers[4] = InProcessWorker(obj.partition_gradient, fault=flip)
    code = ReplicatedGroups(6, replication=3, byzantine=1)
    referee = lambda step, payload: RecomputingReferee(  # noqa: E731
        lambda g: obj.partition_gradient(payload, g))
    with Coordinator(code, workers, referee=referee) as coord:
        final, outcomes = train_coded(obj, coord, params, steps=5, lr=0.1)
    assert _digest(final) == _digest(reference)
    assert all(o.faulty in ((), (4,)) for o in outcomes)
    assert any(o.faulty == (4,) for o in outcomes)


def test_an_uncorrected_liar_changes_the_bits() -> None:
    """Negative control: without coding, one wrong partition gradient changes the result."""
    obj, params = _objective(3)
    reference = train_uncoded(obj, params, steps=2, lr=0.1)
    honest = obj.partition_gradient
    obj.partition_gradient = lambda payload, p: honest(payload, p) * (1.0 if p else 1.0001)  # type: ignore[method-assign]
    assert _digest(train_uncoded(obj, params, steps=2, lr=0.1)) != _digest(reference)


def test_mismatched_partitions_are_rejected() -> None:
    obj, params = _objective(3)
    with Coordinator(FractionalRepetitionCode(4, 1), [InProcessWorker(obj.partition_gradient)
                                                      for _ in range(4)]) as coord, \
            pytest.raises(ValueError, match="partitions"):
        train_coded(obj, coord, params, steps=1, lr=0.1)


def _gradients_on(obj: PartitionedObjective, params: dict[str, torch.Tensor],
                  threads: int) -> list[torch.Tensor]:
    """Every partition gradient of step 0 in a fresh thread whose torch uses ``threads``."""
    def run() -> list[torch.Tensor]:
        torch.set_num_threads(threads)
        return [obj.partition_gradient((0, params), p) for p in range(obj.n_partitions)]

    previous = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(run).result()
    finally:
        torch.set_num_threads(previous)


def test_partition_gradients_have_the_same_bits_on_any_thread_count() -> None:
    obj, params = _objective(3)
    one, two = _gradients_on(obj, params, 1), _gradients_on(obj, params, 2)
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    assert not torch.equal(one[0], one[1])  # distinct partitions, not one answer repeated
