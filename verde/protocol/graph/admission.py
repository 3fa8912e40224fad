"""Admission of a job: reject, with one clear error, what cannot be run or disputed.

Why at submission: a dispute is only fair if the arbiter can derive the step graph itself on
shape-only tensors (Verde, Arun et al. 2025). A program whose control flow or shapes depend
on tensor values (``.item()``, ``nonzero``, data-dependent branches), that captures constant
tensors, or whose real trace differs from its shape-only trace would let an honest provider's
graph disagree with the arbiter's replay — so such jobs are refused before anyone computes.
"""

from __future__ import annotations

import threading

from proofs import canonical_json
from verde.protocol.graph.errors import TraceError
from verde.protocol.graph.execution import expected_structure, trace_step
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.errors import JobSpecError, ProgramNotTraceableError
from verde.protocol.jobs.spec import JobSpec


def admit_job(spec: JobSpec, *, thorough: bool = False) -> JobContext:
    """Check that ``spec`` can be run and disputed; return its context.

    Always: the dataset loads and matches its root, the program builds on the dataset's
    shapes, its data checks pass, and step 1 and step ``steps`` replay on meta tensors (once per
    process for jobs of the same shape, see ``_shape_key``).
    ``thorough=True`` also runs step 1 for real under tracing and requires the same graph as
    the meta replay (one real step of compute).
    """
    try:
        ctx = JobContext.from_spec(spec)
    except (RuntimeError, TypeError) as exc:
        raise JobSpecError(
            f"program {spec.program}: cannot be built on this dataset ({exc})"
        ) from exc
    ctx.program.check_data(spec.config, ctx.dataset.fields)
    key = _shape_key(spec)
    if thorough or key not in _TRACEABLE:
        try:
            first = expected_structure(ctx, 1)
            if spec.steps != 1:
                expected_structure(ctx, spec.steps)
        except TraceError as exc:
            raise ProgramNotTraceableError(
                f"program {spec.program} cannot be disputed: {exc}") from exc
        with _TRACEABLE_LOCK:
            if len(_TRACEABLE) >= _TRACEABLE_MAX:
                _TRACEABLE.clear()
            _TRACEABLE.add(key)
    if thorough:
        try:
            real = trace_step(ctx, ctx.initial_state(), 1)
        except TraceError as exc:
            raise ProgramNotTraceableError(f"program {spec.program}: {exc}") from exc
        if [n.structure() for n in real.nodes] != first:
            raise ProgramNotTraceableError(
                f"program {spec.program}: its real trace differs from its shape-only trace, "
                "so the arbiter could not derive its graph"
            )
    return ctx


#: Jobs that differ only in seed, samples, initial state or checkpoint interval have the same
#: shape-only step graphs, so their traceability is checked once per process. (Gradient coding
#: submits one such job per partition and step.)
_TRACEABLE: set[str] = set()
_TRACEABLE_LOCK = threading.Lock()
_TRACEABLE_MAX = 256


def _shape_key(spec: JobSpec) -> str:
    doc = spec.to_dict()
    for name in ("seed", "samples", "init", "checkpoint_interval"):
        doc.pop(name, None)
    return canonical_json(doc).decode()
