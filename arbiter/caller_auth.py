"""Signed requests on the wire: the client interceptor that signs every call, and the server
interceptor that authenticates the calls that start new work.

The format and the checks are :mod:`arbiter.request_signing`'s; this module only moves them
through gRPC. The server interceptor sees each gated call's raw request bytes (it wraps the
request deserializer, so the digest is of exactly the bytes received, never of a
re-serialization), authenticates the caller before the servicer runs, logs who called, and
makes the caller available to the servicer through :func:`current_caller` (per-client quotas
count by it).
"""

from __future__ import annotations

import contextvars
import itertools
import logging
from collections.abc import Callable, Collection, Iterator
from typing import Any, NamedTuple

import grpc

from arbiter.interceptors import _behaviour, _rebuild, _split
from arbiter.logs import log_event
from arbiter.request_signing import (
    Caller,
    RequestVerifier,
    body_digest,
    sign_request,
)
from arbiter.status import abort_with_status
from proofs import SigningKey

log = logging.getLogger("verde.service")

_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("verde_caller",
                                                                        default=None)


def current_caller() -> Caller | None:
    """The authenticated caller of the gated call being served on this thread (else None)."""
    return _CALLER.get()


def caller_name() -> str:
    """The current caller's quota name (``local`` outside a gated gRPC call)."""
    caller = _CALLER.get()
    return caller.name if caller is not None else "local"


def _digesting(deserialize: Callable[[bytes], Any] | None
               ) -> Callable[[bytes], tuple[bytes, Any]]:
    def read(raw: bytes) -> tuple[bytes, Any]:
        return body_digest(raw), (deserialize(raw) if deserialize is not None else raw)
    return read


class CallerGate(grpc.ServerInterceptor):
    """Authenticates the ``gated`` methods' callers with ``verifier`` (see the module doc)."""

    def __init__(self, gated: Collection[str], verifier: RequestVerifier) -> None:
        self.gated = frozenset(gated)
        self.verifier = verifier

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or _split(details.method)[1] not in self.gated:
            return handler
        inner = _behaviour(handler)
        method = details.method
        metadata = details.invocation_metadata
        authenticate = self._authenticate

        def call(caller: Caller, request: Any, context: grpc.ServicerContext) -> Any:
            token = _CALLER.set(caller)
            try:
                return inner(request, context)
            finally:
                _CALLER.reset(token)

        if handler.request_streaming:
            def streaming(pairs: Iterator[tuple[bytes, Any]], context: grpc.ServicerContext
                          ) -> Any:
                first = next(pairs, None)
                caller = authenticate(method, body_digest(b"") if first is None else first[0],
                                      metadata, context)
                messages = itertools.chain([] if first is None else [first[1]],
                                           (m for _, m in pairs))
                return call(caller, messages, context)
            behaviour: Callable[..., Any] = streaming
        else:
            def unary(pair: tuple[bytes, Any], context: grpc.ServicerContext) -> Any:
                caller = authenticate(method, pair[0], metadata, context)
                return call(caller, pair[1], context)
            behaviour = unary
        return _rebuild(handler, behaviour, _digesting(handler.request_deserializer))

    def _authenticate(self, method: str, digest: bytes, metadata: Any,
                      context: grpc.ServicerContext) -> Caller:
        try:
            caller = self.verifier.verify(method, digest, metadata, context.peer())
        except Exception as exc:
            log_event(log, logging.WARNING, "caller.refused",
                      f"refused {method.rsplit('/', 1)[-1]} from {context.peer()}: {exc}",
                      method=method, peer=context.peer(), reason=str(exc))
            abort_with_status(context, exc)
            raise  # pragma: no cover - abort raises
        log_event(log, logging.INFO, "caller.accepted",
                  f"{method.rsplit('/', 1)[-1]} from {caller.name[:16]}",
                  method=method, client=caller.name, peer=caller.peer)
        return caller


class RequestSigner(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                    grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Signs every call a channel makes with the client's key (see arbiter.request_signing)."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key

    def _details(self, details: grpc.ClientCallDetails, digest: bytes
                 ) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()),
                    *sign_request(self.key, details.method, digest)]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None),
                            getattr(details, "compression", None))

    def _unary(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        digest = body_digest(request.SerializeToString())
        return continuation(self._details(details, digest), request)

    def _streaming(self, continuation: Any, details: grpc.ClientCallDetails,
                   requests: Iterator[Any]) -> Any:
        it = iter(requests)
        first = next(it, None)
        digest = body_digest(b"" if first is None else first.SerializeToString())
        chained = it if first is None else itertools.chain([first], it)
        return continuation(self._details(details, digest), chained)

    intercept_unary_unary = _unary
    intercept_unary_stream = _unary
    intercept_stream_unary = _streaming
    intercept_stream_stream = _streaming


class _CallDetails(NamedTuple):
    """The fields of ``grpc.ClientCallDetails``, with the signature added to ``metadata``."""

    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


def signed_channel(channel: grpc.Channel, key: SigningKey | None) -> grpc.Channel:
    """``channel`` signing every call with ``key`` (unchanged when ``key`` is None)."""
    return channel if key is None else grpc.intercept_channel(channel, RequestSigner(key))
