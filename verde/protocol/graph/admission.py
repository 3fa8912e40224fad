"""Admission of a job: accept only what an honest provider can defend; refuse the rest with one
clear error (a ``VerdeInputError``: INVALID_ARGUMENT over gRPC, exit 3 on the CLI).

Why at submission: a dispute is only fair if the arbiter can derive the step graph itself on
shape-only tensors and recompute any one node to the bit (Verde, Arun et al. 2025). A provider
that accepted a job whose real graph differs from that replay, or whose values are not a
function of the spec, would be condemned for computing honestly. So, for every job:

* the program builds on the dataset's shapes and its data checks pass;
* steps 1 and ``steps`` replay on meta tensors (the arbiter's view);
* **one real step is traced and must equal the shape-only replay node for node** -- this is
  what catches ops that pick a kernel by device (SDPA's CPU flash kernel against the math path
  on meta tensors) or by value. Both checks are cached per program, code and shapes
  (:func:`_shape_key`), never skipped: jobs that differ only in seed, samples, initial state
  or checkpoint interval have the same graphs;
* an op repops has no reproducible kernel for is refused *by name*
  (:class:`UnsupportedOperation`), as is a value-dependent branch (``.item()``, ``nonzero``)
  or a captured constant tensor (:class:`ProgramNotTraceableError`);
* random ops draw from the job's Philox stream (the tracer refuses any other source under
  repops); under ``backend = "torch"``, fused attention kernels -- which draw dropout from
  torch's global generator and are chosen by device -- are refused, and the job binds the
  machine it is reproducible on (``JobSpec.platform``).
"""

from __future__ import annotations

import threading
from typing import Any

from proofs import canonical_json
from verde.errors import VerdeError
from verde.protocol.graph.execution import expected_structure, trace_step
from verde.protocol.graph.refusal import (
    TRACE_FAILURES,
    UnsupportedOperation,
    refused_if_untraceable,
)
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.errors import JobSpecError, ProgramNotTraceableError
from verde.protocol.jobs.generate_step import check_pad_token
from verde.protocol.jobs.spec import JobSpec

__all__ = ["TraceMismatch", "UnsupportedOperation", "admit_job", "check_traces"]

#: Vendor ops that pick their kernel by device and draw dropout from torch's own generator.
FUSED_ATTENTION_MARKERS = ("scaled_dot_product", "flash_attention", "efficient_attention",
                           "cudnn_attention")


class TraceMismatch(ProgramNotTraceableError):
    """A program's real trace differs from its shape-only trace (the first difference named)."""


def admit_job(spec: JobSpec, *, thorough: bool = False) -> JobContext:
    """Check that ``spec`` can be run and disputed; return its context.

    ``thorough=True`` repeats the trace checks even when this shape was admitted before.
    """
    try:
        ctx = JobContext.from_spec(spec)
    except VerdeError:
        raise
    except TRACE_FAILURES as exc:  # the program's code, building its module
        raise JobSpecError(
            f"program {spec.program}: cannot be built on this dataset ({exc})"
        ) from exc
    ctx.program.check_data(spec.config, ctx.dataset.fields)
    key = _shape_key(spec)
    if thorough or key not in _ADMITTED:
        check_traces(ctx)
        with _ADMITTED_LOCK:
            if len(_ADMITTED) >= _ADMITTED_MAX:
                _ADMITTED.clear()
            _ADMITTED.add(key)
    return ctx


def check_traces(ctx: JobContext) -> None:
    """The shape-only replays of steps 1 and ``steps`` and one real traced step 1 (on seeded
    parameters of the job's shapes), which must record the same graph."""
    spec = ctx.spec
    with refused_if_untraceable(spec):
        if spec.kind == "generate":
            check_pad_token(spec, ctx.vocab_size())
        first = expected_structure(ctx, 1)
        if spec.steps != 1:
            expected_structure(ctx, spec.steps)
        params = ctx.program.initial_parameters(ctx.module, spec.seed)
        real = trace_step(ctx, ctx.initial_state(params), 1)
    nodes = [n.structure() for n in real.nodes]
    if spec.backend == "torch":
        _refuse_vendor_randomness(spec, nodes)
    if nodes != first:
        raise TraceMismatch(f"program {spec.program}: its real trace differs from its "
                            f"shape-only trace ({_first_difference(nodes, first)}), so an "
                            "arbiter could not derive its graph")


def _refuse_vendor_randomness(spec: JobSpec, nodes: list[dict[str, Any]]) -> None:
    for i, node in enumerate(nodes):
        op = str(node.get("op", ""))
        if any(marker in op for marker in FUSED_ATTENTION_MARKERS):
            raise UnsupportedOperation(
                f"program {spec.program}: node {i} is {op}, a fused attention kernel that is "
                "chosen by device and draws dropout from torch's generator, not the job's "
                "stream; use eager (matmul + softmax) attention")


def _first_difference(real: list[dict[str, Any]], meta: list[dict[str, Any]]) -> str:
    for i, (a, b) in enumerate(zip(real, meta, strict=False)):
        if a != b:
            if a.get("op") != b.get("op"):
                return f"node {i} is {a.get('op')} in the real run, {b.get('op')} shape-only"
            return f"node {i} ({a.get('op')}) has other arguments or outputs"
    return f"{len(real)} nodes in the real run, {len(meta)} shape-only"


#: Programs (by name, code and shapes) whose traces were checked in this process.
_ADMITTED: set[str] = set()
_ADMITTED_LOCK = threading.Lock()
_ADMITTED_MAX = 256


def _shape_key(spec: JobSpec) -> str:
    doc = spec.identity()
    for name in ("seed", "samples", "init", "checkpoint_interval"):
        doc.pop(name, None)
    return canonical_json(doc).decode()

