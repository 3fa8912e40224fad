"""Upload streams that cannot hold a service hostage: idle timeout, total duration, and a cap
on how many run at once.

Why: a gRPC server has a fixed pool of worker threads and a client-streaming call (a state
upload) holds one for as long as the client keeps the stream open. A slowloris client opens
uploads and sends a byte now and then, or nothing at all; a few of them would take every
worker, and dispute queries — where silence loses a dispute — would queue behind them. So:

- at most ``max_streams`` uploads run at once (more get RESOURCE_EXHAUSTED at once), which
  always leaves workers for everything else;
- an upload whose next message does not arrive within ``idle_s`` (a slow drip, or a stream
  opened and left silent), or that is still running after ``max_s``, ends with
  DEADLINE_EXCEEDED naming the limit;
- a streamed reply (dispute answers, state downloads) still being sent after ``reply_max_s``
  is cancelled: a client that stops reading blocks the sending worker in gRPC's flow control,
  and a client without a deadline would hold it forever.

How: gRPC's request iterator cannot time out a read, so a reader thread pulls the messages
into a small queue and the servicer reads that queue with a timeout. When the call ends the
gRPC runtime terminates the request stream, which ends the reader.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

import grpc

from arbiter.errors import QuotaExceeded, StreamTooSlow
from arbiter.interceptors import _behaviour, _rebuild, _split
from arbiter.status import abort_with_status

#: Seconds an upload may wait for its next message, by default.
DEFAULT_IDLE_S = 30.0
#: Seconds an upload may take in all, by default (256 MiB at under 1 MiB/s still fits).
DEFAULT_MAX_S = 600.0
#: Uploads served at once, by default (the server has 16 worker threads).
DEFAULT_MAX_STREAMS = 4
#: Seconds a streamed reply may take, by default.
DEFAULT_REPLY_MAX_S = 600.0

_END = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class StreamGuard(grpc.ServerInterceptor):
    """Bounds the client-streaming ``methods`` and every streamed reply (see the module
    docstring)."""

    def __init__(self, methods: Collection[str], *, idle_s: float = DEFAULT_IDLE_S,
                 max_s: float = DEFAULT_MAX_S, max_streams: int = DEFAULT_MAX_STREAMS,
                 reply_max_s: float = DEFAULT_REPLY_MAX_S) -> None:
        if idle_s <= 0 or max_s <= 0 or max_streams < 1 or reply_max_s <= 0:
            raise ValueError("upload and reply limits must be positive")
        self.methods = frozenset(methods)
        self.idle_s, self.max_s, self.max_streams = idle_s, max_s, max_streams
        self.reply_max_s = reply_max_s
        self._slots = threading.BoundedSemaphore(max_streams)

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        if handler.response_streaming and not handler.request_streaming:
            # verde's own replies only: a health Watch is meant to stay open.
            ours = details.method.startswith("/verde.")
            return self._limit_reply(handler) if ours else handler
        if not handler.request_streaming or _split(details.method)[1] not in self.methods:
            return handler
        inner = _behaviour(handler)

        def guarded(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            if not self._slots.acquire(blocking=False):
                abort_with_status(context, QuotaExceeded(
                    f"{self.max_streams} uploads are already in progress on this service, "
                    "its limit: try again shortly"))
            done = threading.Event()
            try:
                return inner(self._timed(requests, done), context)
            except StreamTooSlow as exc:  # raised before the servicer's own error mapping
                abort_with_status(context, exc)
            finally:
                done.set()
                self._slots.release()

        return _rebuild(handler, guarded)

    def _limit_reply(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = _behaviour(handler)
        limit = self.reply_max_s

        def limited(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            # cancel() ends a send blocked in flow control; the generator then stops.
            timer = threading.Timer(limit, context.cancel)
            timer.daemon = True
            timer.start()
            try:
                yield from inner(request, context)
            finally:
                timer.cancel()

        return _rebuild(handler, limited)

    def _timed(self, requests: Iterator[Any], done: threading.Event) -> Iterator[Any]:
        buffer: queue.Queue[Any] = queue.Queue(maxsize=4)

        def put(item: Any) -> bool:
            while not done.is_set():
                try:
                    buffer.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for message in requests:
                    if not put(message):
                        return
                put(_END)
            except BaseException as exc:  # the stream failed or was cancelled
                put(_Failed(exc))

        threading.Thread(target=read, name="upload-reader", daemon=True).start()
        end = time.monotonic() + self.max_s
        while True:
            left = end - time.monotonic()
            wait = min(self.idle_s, left)
            if wait <= 0:
                raise StreamTooSlow(f"upload still running after {self.max_s:g}s, this "
                                    "service's limit (--upload-max-seconds)")
            try:
                item = buffer.get(timeout=wait)
            except queue.Empty:
                if wait < self.idle_s:
                    continue  # the total limit, reported above
                raise StreamTooSlow(f"upload stream idle for more than {self.idle_s:g}s, "
                                    "this service's limit (--upload-idle-seconds)") from None
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
