"""The one place where errors become gRPC status codes (servers) and back (clients).

Servicers never catch exceptions themselves: they are wrapped by :func:`grpc_errors`, which
maps the domain error hierarchy to a status code and a one-line detail. Only errors raised on
purpose -- the package roots (``VerdeError``, ``ProofError``, ``RepopsError``) -- get a status
of their own, and only their input-error subclasses (``VerdeInputError``, ``MalformedInput``)
say INVALID_ARGUMENT. Anything else (a bare ``ValueError`` or ``KeyError`` from deep inside) is
a bug, not the caller's fault: INTERNAL with a generic message (the traceback is logged on the
server, never sent).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from arbiter.errors import (
    ArbiterError,
    Conflict,
    LeaseLost,
    NotAllowed,
    NotFound,
    QuotaExceeded,
    StorageError,
    StreamTooSlow,
    Unauthenticated,
)
from proofs import InvalidSignature, MalformedInput, ProofError, VerificationError
from verde.errors import VerdeError, VerdeInputError
from verde.protocol.graph.budget import BudgetExceeded
from verde.protocol.peers.errors import PeerError, PeerTimeout
from verde.protocol.provider.errors import MissingInitialState, StateTooLarge

log = logging.getLogger("verde.arbiter")

# Most specific first: the first matching class decides.
STATUS_OF: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (NotAllowed, grpc.StatusCode.PERMISSION_DENIED),
    (QuotaExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (BudgetExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StreamTooSlow, grpc.StatusCode.DEADLINE_EXCEEDED),
    (StateTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (MissingInitialState, grpc.StatusCode.FAILED_PRECONDITION),
    (LeaseLost, grpc.StatusCode.ABORTED),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (StorageError, grpc.StatusCode.UNAVAILABLE),
    (VerdeInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (PeerTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (PeerError, grpc.StatusCode.UNAVAILABLE),
    (InvalidSignature, grpc.StatusCode.UNAUTHENTICATED),
    (VerificationError, grpc.StatusCode.FAILED_PRECONDITION),
    (MalformedInput, grpc.StatusCode.INVALID_ARGUMENT),
    (ProofError, grpc.StatusCode.INVALID_ARGUMENT),
    (ArbiterError, grpc.StatusCode.FAILED_PRECONDITION),
    (VerdeError, grpc.StatusCode.FAILED_PRECONDITION),
)

F = TypeVar("F", bound=Callable[..., Any])


def status_for(exc: BaseException) -> grpc.StatusCode:
    for cls, code in STATUS_OF:
        if isinstance(exc, cls):
            return code
    if is_repops_error(exc):  # an op or input repops refuses: the caller's program or data
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


def is_repops_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a RepopsError, without importing repops (and torch) to find out:
    if repops was never imported, nothing could have raised one."""
    errors = sys.modules.get("repops.errors")
    return errors is not None and isinstance(exc, errors.RepopsError)


def abort_with_status(context: grpc.ServicerContext, exc: Exception) -> None:
    """End the call with ``exc``'s status and one-line detail (raises, as ``abort`` does)."""
    code = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("internal error in %s", type(exc).__name__)
        context.abort(code, "internal error (see the server log)")
    detail = str(exc) or type(exc).__name__
    context.abort(code, detail[:2000])


def grpc_errors(method: F) -> F:
    """Wrap a unary or server-streaming servicer method with the status mapping."""

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:
            abort_with_status(context, exc)

    @functools.wraps(method)
    def streaming(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(self, request, context)
        except Exception as exc:
            abort_with_status(context, exc)

    import inspect

    return streaming if inspect.isgeneratorfunction(method) else unary  # type: ignore[return-value]


class RemoteError(ArbiterError):
    """A call to a remote service failed; ``code`` is the gRPC status, ``unreachable`` for CLI."""

    def __init__(self, what: str, code: grpc.StatusCode, detail: str) -> None:
        self.code = code
        self.unreachable = code in (grpc.StatusCode.UNAVAILABLE,
                                    grpc.StatusCode.DEADLINE_EXCEEDED)
        super().__init__(f"{what}: {detail} ({code.name})")


def remote_error(what: str, err: grpc.RpcError) -> Exception:
    """Turn a client-side RpcError into the domain error the caller understands."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    detail = err.details() if hasattr(err, "details") else str(err)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return PeerTimeout(f"{what}: no answer before the deadline")
    if code is grpc.StatusCode.NOT_FOUND:
        return NotFound(f"{what}: {detail}")
    return RemoteError(what, code, detail or "")
