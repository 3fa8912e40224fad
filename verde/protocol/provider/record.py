"""What a provider keeps about one job it ran: commitments, checkpoints, its signed result,
and the graphs it replayed for a dispute (only the last asked for; they are recomputable)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from proofs import MerkleTree, SignedMessage
from proofs.state import StateCommitment
from repops.dispatch.encoding import RefKey
from verde.protocol.graph.execution import StepGraph
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.provider.checkpoints import CheckpointStore


@dataclass
class JobRecord:
    """What a provider keeps about one job."""

    spec: JobSpec
    ctx: JobContext
    step_roots: list[bytes]
    tree: MerkleTree
    checkpoints: CheckpointStore
    result: SignedMessage
    timings: dict[str, float] = field(default_factory=dict)
    graphs: dict[int, StepGraph] = field(default_factory=dict)
    valued_graphs: dict[tuple[int, frozenset[RefKey]], StepGraph] = field(default_factory=dict)
    states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    commitments: dict[int, StateCommitment] = field(default_factory=dict)
