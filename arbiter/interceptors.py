"""gRPC server interceptors: every call timed with its status code, a gate for draining, and
INVALID_ARGUMENT for requests that are not messages at all.

Interceptors wrap every method of a server in one place, so servicers stay thin: metrics see
each call's latency and status code (:class:`CallObserver`), a draining service refuses
new work with UNAVAILABLE — what a client's retry or load balancer expects from a stopping
server — while it keeps answering everything else (:class:`DrainGate`), and bytes that do not
decode as the method's request message are the caller's mistake, INVALID_ARGUMENT, where gRPC
itself would answer INTERNAL (:class:`MalformedRequests`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from arbiter.codec import MalformedRequest

#: (service, method, status code name, seconds) of one finished call.
ObservedCall = Callable[[str, str, str, float], None]


def _split(full_method: str) -> tuple[str, str]:
    """``/verde.Arbiter/OpenDispute`` -> (``verde.Arbiter``, ``OpenDispute``)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or full_method


def _rebuild(handler: grpc.RpcMethodHandler, behaviour: Callable[..., Any],
             request_deserializer: Callable[[bytes], Any] | None = None
             ) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` with another behaviour (and, if given,
    another request deserializer)."""
    make = {(False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler}[
        (handler.request_streaming, handler.response_streaming)]
    return make(behaviour,
                request_deserializer=request_deserializer or handler.request_deserializer,
                response_serializer=handler.response_serializer)


def _rebuild_decoding(handler: grpc.RpcMethodHandler, behaviour: Callable[..., Any],
                      decode: Callable[[bytes], Any]) -> grpc.RpcMethodHandler:
    """Like :func:`_rebuild`, with another request deserializer."""
    rebuilt = _rebuild(handler, behaviour)
    return rebuilt._replace(request_deserializer=decode)  # type: ignore[attr-defined, no-any-return]


def _behaviour(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    return (handler.unary_unary or handler.unary_stream or handler.stream_unary
            or handler.stream_stream)


def _code_name(context: grpc.ServicerContext, raised: bool) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "UNKNOWN" if raised else "OK"


class CallObserver(grpc.ServerInterceptor):
    """Reports every call's (service, method, status code, seconds) to ``report``.

    Streaming replies are timed until the last message is sent (or the stream fails).
    """

    def __init__(self, report: ObservedCall) -> None:
        self.report = report

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        service, method = _split(details.method)
        inner = _behaviour(handler)
        report = self.report

        if handler.response_streaming:
            def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with _timed(report, service, method, context):
                    yield from inner(request, context)

            return _rebuild(handler, streaming)

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            with _timed(report, service, method, context):
                return inner(request, context)

        return _rebuild(handler, unary)


@contextmanager
def _timed(report: ObservedCall, service: str, method: str,
           context: grpc.ServicerContext) -> Iterator[None]:
    """Report the call's status code and duration when it ends, however it ends."""
    start, raised = time.perf_counter(), False
    try:
        yield
    except BaseException:
        raised = True
        raise
    finally:
        report(service, method, _code_name(context, raised), time.perf_counter() - start)


class DrainGate(grpc.ServerInterceptor):
    """Once :meth:`close` is called, the ``refused`` methods answer UNAVAILABLE at once.

    ``refused`` names methods that start new work (``SubmitJob``, ``OpenDispute``...);
    status queries, dispute answers and downloads keep working while the service drains.
    """

    def __init__(self, refused: Collection[str]) -> None:
        self.refused = frozenset(refused)
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or not self._closed.is_set():
            return handler
        if _split(details.method)[1] not in self.refused:
            return handler

        def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          "this service is shutting down and takes no new work: try another")

        return _rebuild(handler, refuse)


class MalformedRequests(grpc.ServerInterceptor):
    """Undecodable request bytes get INVALID_ARGUMENT naming the method, not INTERNAL.

    The method's deserializer is wrapped so that a decoding error yields a marker instead of
    failing inside gRPC; a unary request with the marker is refused before the servicer runs,
    a request stream raises :class:`MalformedRequest` where the servicer reads the bad message
    (its status mapping, :mod:`arbiter.status`, makes that INVALID_ARGUMENT).
    """

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer
        inner = _behaviour(handler)
        method = _split(details.method)[1]
        what = f"{method}: the request is not a valid protobuf message"

        def safe_decode(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception:  # any decoding failure of untrusted bytes
                return _UNDECODABLE

        if handler.request_streaming:
            def checked(requests: Iterator[Any]) -> Iterator[Any]:
                for request in requests:
                    if request is _UNDECODABLE:
                        raise MalformedRequest(what)
                    yield request

            def streamed(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                return inner(checked(requests), context)

            return _rebuild_decoding(handler, streamed, safe_decode)

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            if request is _UNDECODABLE:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, what)
            return inner(request, context)

        return _rebuild_decoding(handler, unary, safe_decode)


_UNDECODABLE = object()
