"""Coded data-parallel training: a step's batch cut into partitions, gradients from workers.

The batch of step t is a fixed function of (seed, t); partition p of it is a fixed slice. The
gradient of a partition is ``d/dθ sum_{i in p} loss_i / batch_size``, so the full-batch gradient
is the sum of partition gradients, added in partition order (:func:`ordered_sum`). That sum is
*defined* to be the step's gradient: an uncoded run that computes the same partitions and adds
them in the same order gets the same bits as a fractional-repetition run, whichever replicas
answered — which is what lets replicas be checked bit for bit.

That needs each partition gradient itself to have the same bits wherever it is computed, so
by default it runs under ``repops.reproducible()``. Plain torch (``reproducible=False``) gives
the same bits only where every replica runs the same CPU kernels on the same thread count; even
threads of one process can differ there (a worker thread keeps the OpenMP thread count the
process started with, while the main thread's can change), and honest replicas then disagree.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

import repops
from repops.optim import functional
from verde.coding.base import ordered_sum
from verde.coding.coordinator import Coordinator, StepOutcome

Params = dict[str, torch.Tensor]


@dataclass
class PartitionedObjective:
    """Mini-batch objective whose step-t batch is split into ``n_partitions`` fixed slices."""

    model: nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    inputs: torch.Tensor
    targets: torch.Tensor
    batch_size: int
    n_partitions: int
    seed: int = 0
    reproducible: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < self.n_partitions:
            raise ValueError(f"batch_size {self.batch_size} < n_partitions {self.n_partitions}")
        if len(self.inputs) != len(self.targets) or len(self.inputs) < self.batch_size:
            raise ValueError("inputs and targets must have the same length >= batch_size")

    def batch(self, step: int) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64([self.seed, step]))
        return rng.choice(len(self.inputs), size=self.batch_size, replace=False)

    def partition(self, step: int, p: int) -> np.ndarray:
        return np.array_split(self.batch(step), self.n_partitions)[p]

    def partition_gradient(self, payload: tuple[int, Params], p: int) -> torch.Tensor:
        """Flat gradient of partition ``p`` of step ``payload[0]`` at parameters ``payload[1]``."""
        step, params = payload
        idx = torch.from_numpy(self.partition(step, p))
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        with repops.reproducible() if self.reproducible else contextlib.nullcontext():
            # functional_call swaps the module's parameters while it runs: one call at a time.
            with self._lock:
                out = torch.func.functional_call(self.model, leaves, (self.inputs[idx],))
            loss = self.loss_fn(out, self.targets[idx]) / self.batch_size
            grads = torch.autograd.grad(loss, list(leaves.values()))
            return torch.cat([g.reshape(-1) for g in grads])


def sgd_update(params: Params, flat_grad: torch.Tensor, lr: float) -> Params:
    """Plain SGD of every tensor from one flat gradient, with repops.optim's one update
    (``repops.optim.functional.sgd_update``: ``θ - g*lr``, exact IEEE ops)."""
    out: Params = {}
    offset = 0
    for name, value in params.items():
        n = value.numel()
        g = flat_grad[offset: offset + n].reshape(value.shape)
        out[name], _ = functional.sgd_update(value, g, None, lr=lr)
        offset += n
    return out


def train_coded(objective: PartitionedObjective, coordinator: Coordinator, params: Params,
                steps: int, lr: float) -> tuple[Params, list[StepOutcome]]:
    """Run ``steps`` coded SGD steps; returns final parameters and every step's outcome."""
    if coordinator.code.n_partitions != objective.n_partitions:
        raise ValueError("the code's partitions must match the objective's partitions")
    outcomes = []
    for step in range(steps):
        outcome = coordinator.run_step(step, (step, params))
        params = sgd_update(params, outcome.gradient, lr)
        outcomes.append(outcome)
    return params, outcomes


def train_uncoded(objective: PartitionedObjective, params: Params, steps: int,
                  lr: float) -> Params:
    """Reference run: every partition computed once, summed in partition order."""
    for step in range(steps):
        grads: Sequence[torch.Tensor] = [
            objective.partition_gradient((step, params), p) for p in range(objective.n_partitions)
        ]
        params = sgd_update(params, ordered_sum(list(grads)), lr)
    return params
