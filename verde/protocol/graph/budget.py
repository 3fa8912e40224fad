"""What a job will cost, estimated before anything is allocated, and the limits it must fit.

Why: providers run jobs and arbiters replay steps for parties they may not know. A spec is
small, but what it asks for need not be (an MLP 10^9 wide, 1000 layers deep, 10^7 steps). So a
service estimates the cost from the spec alone -- the module built on the meta device and one
step traced on shape-only tensors, which allocate no data -- and refuses at submit or open, with
the limit named, before allocating any of it. Parameters and state bytes are checked before the
shape-only trace (which costs time in the number of ops); memory and FLOPs after it.

FLOPs are counted per traced node: ``2*m*k*n`` for matrix products (``mm``, ``addmm``, ``bmm``,
``baddbmm``; plus the added term), ``2 * outputs * (inputs per output)`` for convolutions, and
otherwise one per element of the largest input or output -- an estimate for budgets, not a
measurement.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from proofs import canonical_json
from repops.dispatch.encoding import dtype_from_name, iter_refs
from verde.errors import VerdeError
from verde.protocol.graph.execution import expected_structure
from verde.protocol.graph.nodes import COMMIT_OP
from verde.protocol.graph.refusal import refused_if_untraceable
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.spec import JobSpec

_MATMULS = {"aten.mm.default": 0, "aten.addmm.default": 1, "aten.bmm.default": 0,
            "aten.baddbmm.default": 1}
_CONVS = ("aten.convolution.default", "aten.convolution_backward.default")


class BudgetExceeded(VerdeError):
    """A job would cost more than a service's limit allows (RESOURCE_EXHAUSTED); the message
    names the limit, the estimate and the limit's value."""

    def __init__(self, limit: str, needed: int, allowed: int, job: str) -> None:
        self.limit, self.needed, self.allowed = limit, needed, allowed
        super().__init__(f"job {job[:16]} needs {limit} = {needed:,}, over this service's "
                         f"limit of {allowed:,}")


@dataclass(frozen=True)
class JobCost:
    """The estimate of one job: sizes in elements or bytes, work in FLOPs."""

    steps: int
    parameters: int
    state_bytes: int
    step_bytes: int
    step_flops: int

    @property
    def total_flops(self) -> int:
        return self.step_flops * self.steps


@dataclass(frozen=True)
class Budget:
    """A service's limits (``None``: no limit). ``step_bytes`` bounds the bytes of every
    tensor one step produces (what a replay keeping them holds)."""

    steps: int | None = None
    parameters: int | None = None
    state_bytes: int | None = None
    step_bytes: int | None = None
    step_flops: int | None = None
    total_flops: int | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value <= 0):
                raise ValueError(f"budget {item.name} must be a positive int or None, "
                                 f"got {value!r}")

    def check(self, cost: JobCost, job: str, names: Sequence[str] | None = None) -> None:
        """Raise ``BudgetExceeded`` for the first limit (of ``names``, default all) the cost
        breaks."""
        for name in names or [f.name for f in fields(self)]:
            allowed = getattr(self, name)
            needed = getattr(cost, name)
            if allowed is not None and needed is not None and needed > allowed:
                raise BudgetExceeded(name, needed, allowed, job)


def _nbytes(shape: Sequence[int], dtype: torch.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def node_flops(node: Mapping[str, Any], shapes: Mapping[tuple[Any, ...], Sequence[int]]) -> int:
    """The FLOPs estimate of one structure node (see the module docstring)."""
    op = node["op"]
    if op == COMMIT_OP:
        return 0
    ins: list[list[int]] = [list(shapes.get(r, ()))
                            for r in dict.fromkeys(iter_refs(node["args"]))]
    outs: list[list[int]] = [list(shape) for _, shape in node["output_meta"]]
    if op in _MATMULS and len(ins) >= 2:
        a, b = ins[-2], ins[-1]
        if len(a) >= 2 and len(b) >= 2:
            batch = math.prod(a[:-2])
            flops = 2 * batch * a[-2] * a[-1] * b[-1]
            return flops + (batch * a[-2] * b[-1] if _MATMULS[op] else 0)
    if op in _CONVS and len(ins) >= 2 and outs:
        weight = ins[1]
        return 2 * math.prod(outs[0]) * math.prod(weight[1:])
    return max((math.prod(s) for s in ins + outs), default=0)


def step_cost(structure: Sequence[Mapping[str, Any]],
              leaves: Mapping[str, tuple[tuple[int, ...], torch.dtype]]) -> tuple[int, int]:
    """(bytes of every node output, FLOPs) of one step's structure."""
    shapes: dict[tuple[Any, ...], Sequence[int]] = {("leaf", n): s for n, (s, _) in leaves.items()}
    total_bytes = flops = 0
    for node in structure:
        flops += node_flops(node, shapes)
        for j, (dtype, shape) in enumerate(node["output_meta"]):
            shapes[("node", node["index"], j)] = shape
            total_bytes += _nbytes(shape, dtype_from_name(dtype))
    return total_bytes, flops


def estimate_cost(spec: JobSpec, budget: Budget | None = None) -> JobCost:
    """The cost of ``spec``, checked against ``budget`` as soon as each part is known."""
    budget = budget or Budget()
    ctx = JobContext.from_spec(spec)
    with refused_if_untraceable(spec):
        state = ctx.state_structure()  # a meta forward for some kinds (outputs, vocabulary)
    parameters = sum(p.numel() for p in ctx.module.parameters())
    partial = JobCost(spec.steps, parameters, sum(_nbytes(s, d) for s, d in state.values()), 0, 0)
    budget.check(partial, spec.job_id, ("steps", "parameters", "state_bytes"))
    key = _step_key(spec)
    known = _STEP_COSTS.get(key)
    if known is None:
        with refused_if_untraceable(spec):  # the same refusal as admission's
            structure = expected_structure(ctx, costliest_step(ctx))
        known = step_cost(structure, {**state, **ctx.batch_structure()})
        with _STEP_COSTS_LOCK:
            if len(_STEP_COSTS) >= _STEP_COSTS_MAX:
                _STEP_COSTS.clear()
            _STEP_COSTS[key] = known
    cost = JobCost(spec.steps, parameters, partial.state_bytes, *known)
    budget.check(cost, spec.job_id)
    return cost


def checkpoint_bytes(spec: JobSpec, cost: JobCost) -> int:
    """Bytes a provider's checkpoints of ``spec`` hold: state 0, every
    ``checkpoint_interval``-th step and the last one -- with the parameters once for the kinds
    that never change them (inference and generate jobs: the checkpoint store shares entries
    by digest, ``verde.protocol.provider.checkpoints``)."""
    count = spec.steps // spec.checkpoint_interval + 2
    shared = 4 * cost.parameters if spec.kind in ("infer", "generate") else 0  # float32
    return count * (cost.state_bytes - shared) + shared


def costliest_step(ctx: JobContext) -> int:
    """A step no other step of the job costs more than: every step of most jobs has the same
    shapes; a generate job's last position of its longest prompt runs over the most tokens
    (its cost, times the steps, bounds the job's)."""
    if ctx.spec.kind != "generate":
        return 1
    g = ctx.generation
    longest = max(range(g.n_prompts), key=lambda p: g.prompt_lengths[p])
    return g.step_of(longest, g.max_new_tokens - 1)


#: One step's (bytes, FLOPs) depend on the shapes only: jobs differing in seed, samples, initial
#: state, checkpoint interval or number of steps share them (gradient coding submits one job
#: per partition and step), so they are traced once per process.
_STEP_COSTS: dict[str, tuple[int, int]] = {}
_STEP_COSTS_LOCK = threading.Lock()
_STEP_COSTS_MAX = 256


def _step_key(spec: JobSpec) -> str:
    doc = spec.to_dict()
    for name in ("seed", "samples", "init", "checkpoint_interval", "steps"):
        doc.pop(name, None)
    return canonical_json(doc).decode()
