"""Running one step of a job: plainly, traced into a graph, or shape-only for the arbiter.

This is the one place that decides *how* operators execute. ``execution_context`` enters
``repops.reproducible()`` for jobs with backend ``"repops"`` (bit-identical results on any
machine, the premise of Verde, Arun et al. 2025); backend ``"torch"`` runs torch's vendor
kernels under ``repops.tracing`` with deterministic algorithms in one thread and canonical
input layouts, reproducible on one machine only (for programs whose ops repops does not cover
yet). Either way random ops draw from the job's Philox stream for the step
(:func:`step_stream`: seed = the job seed, stream id = the step), so dropout is a function of
the spec and a random op is recomputed like any other.

``trace_step`` gives the provider's committed graph of step ``s`` and ``expected_structure``
the arbiter's own shape-only replay of it; both record with one :class:`repops.Tracer`
configuration (:func:`graph_tracer`) through ``JobContext.step``, so they record the same ops
with the same arguments. The graph ends with the ``verde.commit_state`` node
(:mod:`verde.protocol.graph.nodes`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

import repops
from proofs.digest import tensor_digest
from proofs.merkle import MerkleTree
from proofs.state import StateCommitment
from repops import RepopsError, TraceNode, Tracer
from repops.dispatch.encoding import RefKey
from repops.rng import PhiloxStream
from verde.protocol.graph.errors import TraceError
from verde.protocol.graph.nodes import RNG_ENTRY, commit_node, node_leaf
from verde.protocol.jobs.context import PARAM, JobContext


class _CanonicalLayout(TorchDispatchMode):
    """Temporary stand-in for repops' layout independence under the torch backend: compute ops
    see fresh contiguous inputs, so a provider's op output and the arbiter's recomputation from
    contiguous copies take the same vendor code path. View and in-place ops run as they are."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # torch's own, unannotated

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


def step_stream(seed: int, step: int) -> PhiloxStream:
    """The Philox stream the random ops of step ``step`` draw from (a fresh one per step)."""
    return PhiloxStream(seed, stream=step)


@contextlib.contextmanager
def _vendor_settings() -> Iterator[None]:
    """What makes vendor kernels repeatable on one machine: deterministic algorithms, one
    thread (one fixed reduction order) and canonical input layouts."""
    previous = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        with _CanonicalLayout():
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(previous)


@contextlib.contextmanager
def execution_context(backend: str, *, tracer: Tracer | None = None,
                      stream: PhiloxStream | None = None) -> Iterator[None]:
    """The operator semantics every step of a job runs under (the spec's ``backend``)."""
    if backend == "repops":
        with repops.reproducible(strict=True, tracer=tracer, seed=stream):
            yield
    elif backend == "torch":
        with _vendor_settings(), repops.tracing(tracer, seed=stream):
            yield
    else:
        raise ValueError(f"unknown backend {backend!r}")


def graph_tracer_options(keep: bool | Collection[RefKey] = False) -> dict[str, Any]:
    """The tracer configuration of the protocol: proofs digests, devices recorded as ``*`` (a
    meta replay and a CPU run give identical records), and every input must be checkable --
    an unknown tensor (a captured constant, a value changed in place through another view) or a
    Python value returned by an op (``.item()``: control flow may depend on it) is refused."""
    return {"digest_fn": tensor_digest, "keep_outputs": keep, "device_label": "*",
            "unknown_tensors": "refuse", "scalar_results": "refuse"}


def graph_tracer(keep: bool | Collection[RefKey] = False) -> Tracer:
    """A :class:`repops.Tracer` with :func:`graph_tracer_options`."""
    return Tracer(**graph_tracer_options(keep))


def run_step(
    ctx: JobContext,
    state: Mapping[str, torch.Tensor],
    step: int,
    *,
    batch: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """State ``step`` from state ``step - 1`` (no tracing). ``batch`` exists for fault
    injection (``verde.protocol.faults``: a step run on other samples)."""
    batch = ctx.batch(step) if batch is None else batch
    leaves = ctx.prepare_leaves(state)
    with execution_context(ctx.spec.backend, stream=step_stream(ctx.spec.seed, step)):
        new_state = ctx.step(leaves, batch, step)
    new_state = {k: v.detach() for k, v in new_state.items()}
    new_state[RNG_ENTRY] = ctx.rng_state(step)
    return new_state


def partition_stream(ctx: JobContext, step: int, first: int) -> PhiloxStream:
    """The step's stream positioned where partition ``first`` starts drawing in the sequential
    step. Partitions are equal slices with the same shapes, so each draws the same number of
    Philox blocks (:func:`partition_draws`) and partition ``p`` starts at ``p`` times that."""
    return PhiloxStream(ctx.spec.seed, stream=step, offset=first * partition_draws(ctx))


_DRAWS: dict[str, int] = {}


def partition_draws(ctx: JobContext) -> int:
    """Philox blocks one partition's forward and backward draw: a shape-only replay of one
    partition (random ops advance the stream there exactly as in a real run), once per job."""
    job = ctx.spec.job_id
    if job not in _DRAWS:
        meta_state = {name: torch.empty(shape, dtype=dtype, device="meta")
                      for name, (shape, dtype) in ctx.state_structure().items()
                      if name != RNG_ENTRY}  # fmt: skip
        meta_batch = {name: torch.empty(shape, dtype=dtype, device="meta")
                      for name, (shape, dtype) in ctx.batch_structure().items()}  # fmt: skip
        stream = PhiloxStream(ctx.spec.seed, stream=1)
        with execution_context(ctx.spec.backend, stream=stream):
            ctx.partition_gradients(ctx.prepare_leaves(meta_state), meta_batch, range(1))
        if len(_DRAWS) >= 1024:
            _DRAWS.pop(next(iter(_DRAWS)))
        _DRAWS[job] = stream.offset
    return _DRAWS[job]


def run_partitions(ctx: JobContext, state: Mapping[str, torch.Tensor], step: int,
                   partitions: range) -> list[dict[str, torch.Tensor]]:
    """The loss gradients of ``partitions`` of step ``step`` at state ``step - 1``, the bits
    the sequential step computes for them: one worker's share of a scaled-out provider."""
    if not partitions or partitions.step != 1 or not (
            partitions.start >= 0 and partitions.stop <= ctx.spec.partitions):
        raise ValueError(f"partitions {partitions} are not a contiguous run of the job's "
                         f"{ctx.spec.partitions} partitions")
    leaves = ctx.prepare_leaves({k: v for k, v in state.items() if k.startswith(PARAM)})
    batch = ctx.batch(step)
    with execution_context(ctx.spec.backend,
                           stream=partition_stream(ctx, step, partitions.start)):
        parts = ctx.partition_gradients(leaves, batch, partitions)
    return [{n: g.detach() for n, g in part.items()} for part in parts]


def run_step_from_partitions(ctx: JobContext, state: Mapping[str, torch.Tensor], step: int,
                             parts: Sequence[Mapping[str, torch.Tensor]],
                             ) -> dict[str, torch.Tensor]:
    """State ``step`` from state ``step - 1`` and every partition's gradient (in partition
    order, e.g. from :func:`run_partitions` on several workers): bit for bit :func:`run_step`."""
    leaves = {k: v.detach() for k, v in state.items()}
    with execution_context(ctx.spec.backend, stream=step_stream(ctx.spec.seed, step)):
        new_state = ctx.apply_partition_gradients(leaves, parts, step)
    new_state = {k: v.detach() for k, v in new_state.items()}
    new_state[RNG_ENTRY] = ctx.rng_state(step)
    return new_state


@dataclass
class StepGraph:
    """A traced step: its nodes (commit node last), Merkle tree, resulting state, and the
    tracer that recorded it (holding the node outputs asked to be kept)."""

    step: int
    nodes: list[TraceNode]
    state: dict[str, torch.Tensor]
    tree: MerkleTree
    tracer: Tracer

    @property
    def root(self) -> bytes:
        return self.tree.root

    def value(self, key: RefKey) -> torch.Tensor:
        """A kept tensor (a node output as it was produced, or a leaf)."""
        return self.tracer.value(key)


def _commit(tracer: Tracer, new_state: Mapping[str, torch.Tensor], step: int,
            state_root: bytes | None) -> TraceNode:
    try:
        entries = {name: tracer.ref(new_state[name]) for name in sorted(new_state)}
    except RepopsError as exc:
        raise TraceError(f"the state of step {step}: {exc}") from exc
    return commit_node(len(tracer.nodes), entries, step, state_root)


def _traced(ctx: JobContext, tracer: Tracer, leaves: Mapping[str, torch.Tensor],
            batch: Mapping[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
    """Run step ``step`` under ``tracer``; repops' refusals become ``TraceError``."""
    tracer.register_leaves(leaves)
    tracer.register_leaves(batch)
    try:
        with execution_context(ctx.spec.backend, tracer=tracer,
                               stream=step_stream(ctx.spec.seed, step)):
            return ctx.step(leaves, batch, step)
    except (repops.UntracedTensorError, repops.ScalarResultError) as exc:
        raise TraceError(str(exc)) from exc


def trace_step(
    ctx: JobContext,
    state: Mapping[str, torch.Tensor],
    step: int,
    *,
    batch: Mapping[str, torch.Tensor] | None = None,
    keep: bool | Collection[RefKey] = False,
    tracer: Tracer | None = None,
) -> StepGraph:
    """Replay step ``step`` from state ``step - 1`` under tracing (real tensors, digests).

    ``keep`` names the node outputs and leaves whose values the caller needs (default none:
    a graph commitment needs only digests). ``tracer`` replaces :func:`graph_tracer` (fault
    injection records through a tracer that alters one output).
    """
    leaves = ctx.prepare_leaves(state)
    batch = ctx.batch(step) if batch is None else batch
    tracer = tracer if tracer is not None else graph_tracer(keep)
    new_state = _traced(ctx, tracer, leaves, batch, step)
    full = {k: v.detach() for k, v in new_state.items()}
    full[RNG_ENTRY] = ctx.rng_state(step)
    root = StateCommitment.from_tensors(full).root
    nodes = [*tracer.nodes, _commit(tracer, new_state, step, root)]
    return StepGraph(step, nodes, full, MerkleTree([node_leaf(n) for n in nodes]), tracer)


def expected_structure(ctx: JobContext, step: int) -> list[dict[str, Any]]:
    """The arbiter's replay of step ``step`` on meta tensors: each node's structure.

    Raises ``TraceError`` if the program cannot be traced shape-only (value-dependent control
    flow), which admission turns into a rejection at submission.
    """
    meta_state = {
        name: torch.empty(shape, dtype=dtype, device="meta")
        for name, (shape, dtype) in ctx.state_structure().items()
        if name != RNG_ENTRY
    }
    meta_batch = {
        name: torch.empty(shape, dtype=dtype, device="meta")
        for name, (shape, dtype) in ctx.batch_structure().items()
    }
    leaves = ctx.prepare_leaves(meta_state)
    tracer = graph_tracer()
    try:
        new_state = _traced(ctx, tracer, leaves, meta_batch, step)
    except TraceError:
        raise
    except (RuntimeError, NotImplementedError, RepopsError) as exc:
        raise TraceError(
            f"step {step} cannot be replayed on shape-only tensors ({exc}); programs whose "
            "control flow or shapes depend on tensor values cannot be disputed"
        ) from exc
    nodes = [*tracer.nodes, _commit(tracer, new_state, step, None)]
    return [n.structure() for n in nodes]


def recompute_node(backend: str, op: str, args: Mapping[str, Any],
                   inputs: Mapping[RefKey, torch.Tensor]) -> tuple[bytes, ...]:
    """Recompute one recorded op (``op``, encoded ``args``) on verified inputs -- the arbiter's
    one operator -- under the job's backend; the digests of its outputs."""
    if backend == "repops":
        outputs = repops.execute_node(op, args, inputs)
    elif backend == "torch":
        with _vendor_settings():
            outputs = repops.execute_node(op, args, inputs, vendor=True)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    return tuple(tensor_digest(o) for o in outputs)
