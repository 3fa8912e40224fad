"""The arbiter's own computation: exactly one operator of the job (or a state root).

Verde (Arun et al. 2025) keeps the referee's work to a single operator of the disputed
step. ``OPS_EXECUTED`` counts the real (non-meta) operators the arbiter runs, so tests can
assert it is exactly one per operator ruling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from proofs.digest import tensor_digest
from proofs.state import StateCommitment
from repops.dispatch.encoding import RefKey, ref_key
from verde.protocol.graph.execution import recompute_node
from verde.protocol.graph.nodes import RNG_ENTRY
from verde.protocol.jobs.context import JobContext

OPS_EXECUTED = {"count": 0}


def recompute_operator(backend: str, op: str, args: Mapping[str, Any],
                       inputs: Mapping[RefKey, torch.Tensor]) -> tuple[bytes, ...]:
    """Run one recorded op on verified inputs; the digests of its outputs."""
    OPS_EXECUTED["count"] += 1
    return recompute_node(backend, op, args, inputs)


def recompute_state_root(ctx: JobContext, entries: Mapping[str, Any], step: int,
                         digests: Mapping[RefKey, str]) -> tuple[bytes, ...]:
    """The state root a ``verde.commit_state`` node must output, from agreed digests."""
    resolved: dict[str, bytes] = {}
    for name, ref in entries.items():
        if name == RNG_ENTRY:
            resolved[name] = tensor_digest(ctx.rng_state(step))
        else:
            resolved[name] = bytes.fromhex(digests[ref_key(ref)])
    return (StateCommitment(resolved).root,)
