"""Running one step of a job: plainly, traced into a graph, or shape-only for the arbiter.

This is the one place that decides *how* operators execute. ``execution_context`` enters
``repops.reproducible()`` for jobs with backend ``"repops"`` (bit-identical results on any
machine, the premise of Verde, Arun et al. 2025); backend ``"torch"`` runs torch's
deterministic algorithms in one thread with canonical input layouts, reproducible on one
machine only (for programs whose ops repops does not cover yet).

``trace_step`` gives the provider's committed graph of step ``s`` and ``expected_structure``
the arbiter's own shape-only replay of it; both go through ``StepTracer`` and
``JobContext.step``, so they record the same ops with the same arguments. The graph ends with a
``verde.commit_state`` node binding every entry of state ``s`` to the node (or leaf) that
produced it, and its output is the state root: a provider cannot present an honest graph and
a dishonest state, or the other way round.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from proofs.merkle import MerkleTree
from proofs.state import StateCommitment
from verde.protocol.jobs.context import RNG, JobContext
from verde.protocol.provider.errors import TraceError
from verde.protocol.provider.tracing import COMMIT_OP, GraphNode, StepTracer


class _CanonicalLayout(TorchDispatchMode):
    """Temporary stand-in for repops' layout independence: compute ops see fresh contiguous
    inputs, so a provider's op output and the arbiter's recomputation from contiguous copies
    take the same vendor code path. View and in-place ops run on the tensors as they are."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        schema = func._schema
        aliasing = any(a.alias_info is not None for a in schema.arguments) or any(
            r.alias_info is not None for r in schema.returns
        )
        if not aliasing:
            args, kwargs = tree_map(_canonical, (args, kwargs))
        return func(*args, **kwargs)


def _canonical(value: Any) -> Any:
    if (
        isinstance(value, torch.Tensor)
        and not (value.is_contiguous() and value.storage_offset() == 0)
    ):
        return value.clone(memory_format=torch.contiguous_format)
    return value


@contextlib.contextmanager
def execution_context(backend: str) -> Iterator[None]:
    """The operator semantics every step of a job runs under (the spec's ``backend``)."""
    if backend == "repops":
        import repops

        with repops.reproducible(strict=True):
            yield
        return
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r}")
    previous = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # one fixed reduction order for vendor kernels
    try:
        with _CanonicalLayout():
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(previous)


def run_step(
    ctx: JobContext,
    state: Mapping[str, torch.Tensor],
    step: int,
    *,
    batch: Mapping[str, torch.Tensor] | None = None,
    interceptor: TorchDispatchMode | None = None,
) -> dict[str, torch.Tensor]:
    """State ``step`` from state ``step - 1`` (no tracing).

    ``batch`` and ``interceptor`` exist for fault injection (``verde.protocol.faults``): a different
    batch, or a dispatch mode placed just above the kernels that may alter op outputs.
    """
    batch = ctx.batch(step) if batch is None else batch
    leaves = ctx.prepare_leaves(state)
    with execution_context(ctx.spec.backend), interceptor or contextlib.nullcontext():
        new_state = ctx.step(leaves, batch, step)
    new_state = {k: v.detach() for k, v in new_state.items()}
    new_state[RNG] = ctx.rng_state(step)
    return new_state


@dataclass
class StepGraph:
    """A traced step: its nodes (commit node last), Merkle tree and resulting state."""

    step: int
    nodes: list[GraphNode]
    state: dict[str, torch.Tensor]
    tensors: dict[tuple[int, int], torch.Tensor]
    tree: MerkleTree

    @property
    def root(self) -> bytes:
        return self.tree.root


def _commit_node(
    ctx: JobContext, tracer: StepTracer, new_state: Mapping[str, torch.Tensor], step: int,
    state_root: str,
) -> GraphNode:  # fmt: skip
    entries: dict[str, Any] = {}
    for name in sorted(new_state):
        entries[name] = tracer.ref_of(new_state[name])
    entries[RNG] = {"rng_step": step}
    return GraphNode(len(tracer.nodes), COMMIT_OP, {"entries": entries}, [], [state_root])


def trace_step(
    ctx: JobContext,
    state: Mapping[str, torch.Tensor],
    step: int,
    *,
    batch: Mapping[str, torch.Tensor] | None = None,
    interceptor: TorchDispatchMode | None = None,
) -> StepGraph:
    """Replay step ``step`` from state ``step - 1`` under tracing (real tensors, digests)."""
    leaves = ctx.prepare_leaves(state)
    batch = ctx.batch(step) if batch is None else batch
    tracer = StepTracer(digests=True)
    tracer.register_leaves(leaves)
    tracer.register_leaves(batch)
    with execution_context(ctx.spec.backend), interceptor or contextlib.nullcontext(), tracer:
        new_state = ctx.step(leaves, batch, step)
    full = {k: v.detach() for k, v in new_state.items()}
    full[RNG] = ctx.rng_state(step)
    root = StateCommitment.from_tensors(full).root.hex()
    nodes = [*tracer.nodes, _commit_node(ctx, tracer, new_state, step, root)]
    tensors = tracer.node_outputs()
    return StepGraph(step, nodes, full, tensors, MerkleTree([n.leaf_data() for n in nodes]))


def expected_structure(ctx: JobContext, step: int) -> list[dict[str, Any]]:
    """The arbiter's replay of step ``step`` on meta tensors: each node's structure.

    Raises ``TraceError`` if the program cannot be traced shape-only (value-dependent control
    flow), which ``admit_job`` turns into a rejection at submission.
    """
    meta_state = {
        name: torch.empty(shape, dtype=dtype, device="meta")
        for name, (shape, dtype) in ctx.state_structure().items()
        if name != RNG
    }
    meta_batch = {
        name: torch.empty(shape, dtype=dtype, device="meta")
        for name, (shape, dtype) in ctx.batch_structure().items()
    }
    leaves = ctx.prepare_leaves(meta_state)
    tracer = StepTracer(digests=False)
    tracer.register_leaves(leaves)
    tracer.register_leaves(meta_batch)
    try:
        with execution_context(ctx.spec.backend), tracer:
            new_state = ctx.step(leaves, meta_batch, step)
    except TraceError:
        raise
    except (RuntimeError, NotImplementedError) as exc:
        raise TraceError(
            f"step {step} cannot be replayed on shape-only tensors ({exc}); programs whose "
            "control flow or shapes depend on tensor values cannot be disputed"
        ) from exc
    nodes = [*tracer.nodes, _commit_node(ctx, tracer, new_state, step, "")]
    return [n.structure() for n in nodes]
