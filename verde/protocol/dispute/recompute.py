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
from verde.protocol.jobs.context import RNG, JobContext
from verde.protocol.provider.execution import execution_context
from verde.protocol.provider.tracing import execute_node, ref_key

OPS_EXECUTED = {"count": 0}


def recompute_operator(
    backend: str, op: str, args: Any, inputs: Mapping[str, torch.Tensor]
) -> list[str]:
    """Run one recorded op on verified inputs; the hex digests of its outputs ("" for None)."""
    OPS_EXECUTED["count"] += 1
    with execution_context(backend):
        outputs = execute_node(op, args, inputs)
    return [tensor_digest(o).hex() if isinstance(o, torch.Tensor) else "" for o in outputs]


def recompute_state_root(ctx: JobContext, entries: Mapping[str, Any], step: int,
                         digests: Mapping[str, str]) -> list[str]:  # fmt: skip
    """The state root a ``verde.commit_state`` node must output, from agreed digests."""
    resolved: dict[str, bytes] = {}
    for name, ref in entries.items():
        if name == RNG:
            if ref != {"rng_step": step}:
                return ["<rng entry is not this step's>"]
            resolved[name] = tensor_digest(ctx.rng_state(step))
        else:
            resolved[name] = bytes.fromhex(digests[ref_key(ref)])
    return [StateCommitment(resolved).root.hex()]
