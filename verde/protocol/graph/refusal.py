"""One refusal for a program that cannot be traced, wherever the trace is first tried.

Why one home: a provider estimates a job's cost (``budget.estimate_cost``) before it admits
it (``admission.check_traces``), and both replay a step of a program they did not write. What
the program's code raises there -- a Hugging Face model that cannot take the adapter's mask, a
config mistake its modelling code only finds when it runs -- must become the same one clear
refusal (``ProgramNotTraceableError``, INVALID_ARGUMENT over gRPC), never a raw exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from repops import RepopsError, UnsupportedOpError
from verde.protocol.graph.errors import TraceError
from verde.protocol.jobs.errors import JobSpecError, ProgramNotTraceableError
from verde.protocol.jobs.spec import JobSpec

#: What a program's step may raise when it cannot be traced: repops' and the tracer's own
#: refusals, and what torch and modelling code raise on shapes and arguments they do not take.
TRACE_FAILURES: tuple[type[BaseException], ...] = (
    TraceError, RepopsError, RuntimeError, NotImplementedError, ValueError, TypeError,
    IndexError, KeyError, AttributeError)


class UnsupportedOperation(ProgramNotTraceableError):
    """A program uses an op that cannot be recomputed reproducibly (named in the message)."""


@contextmanager
def refused_if_untraceable(spec: JobSpec) -> Iterator[None]:
    """Run part of a step of ``spec``'s program: what it raises becomes :func:`refusal`; a job
    spec's own refusal (``JobSpecError``, itself a ``ValueError``) passes as it is."""
    try:
        yield
    except JobSpecError:
        raise
    except TRACE_FAILURES as exc:
        raise refusal(spec, exc) from exc


def refusal(spec: JobSpec, exc: BaseException) -> ProgramNotTraceableError:
    """The refusal of ``spec`` for ``exc`` (an unsupported op named as such)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, UnsupportedOpError):
            return unsupported(spec, cause)
        cause = cause.__cause__
    if isinstance(exc, ProgramNotTraceableError):
        return exc
    return ProgramNotTraceableError(f"program {spec.program} cannot be disputed: {exc}")


def unsupported(spec: JobSpec, exc: UnsupportedOpError) -> UnsupportedOperation:
    return UnsupportedOperation(
        f"program {spec.program} uses {exc.op}, which cannot be recomputed reproducibly "
        f"under backend {spec.backend!r} ({exc}); express it with covered ops")
