"""A gRPC relay in front of a provider, so a test decides when its dispute answers arrive.

Why: the operations tests must see a dispute *while it runs* (metrics between its rounds, a
SIGTERM in the middle of a round). Racing wall-clock polls against a dispute whose rounds take
milliseconds failed on loaded CI machines. A relay at the address the provider advertises
(``provider serve --advertise``, the way a provider behind a proxy runs) forwards every call
byte for byte, and calls ``before_answer(n)`` before it forwards the n-th ``Answer`` call
(counted from 1 over every relay sharing one :class:`AnswerHook`): the arbiter is then waiting
for that answer, so whatever the hook observes or holds happens at a known point of the
dispute.

The provider signs endpoint records and challenges for the relay's address (that is what it
advertises), so the arbiter vouches the relay exactly as it would vouch the provider itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc

from arbiter.proto import verde_pb2 as pb

_UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
_HOP_BY_HOP = ("user-agent", "grpc-")


class AnswerHook:
    """Counts ``Answer`` calls across relays and runs ``before_answer(n)`` before each."""

    def __init__(self, before_answer: Callable[[int], None]) -> None:
        self._before_answer = before_answer
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self) -> None:
        with self._lock:
            self.calls += 1
            n = self.calls
        self._before_answer(n)


class ProviderRelay:
    """Listens on 127.0.0.1 (port chosen by the OS) and forwards to ``target`` once set.

    ``dropped`` names methods the relay answers UNAVAILABLE itself without forwarding (a
    provider that took a job and withholds its result: ``{"GetResult"}``).
    """

    def __init__(self, hook: AnswerHook | None = None,
                 dropped: frozenset[str] = frozenset()) -> None:
        self.hook = hook
        self.dropped = dropped
        self._channel: grpc.Channel | None = None
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                   options=_UNLIMITED)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        service = pb.DESCRIPTOR.services_by_name["Provider"]
        handlers = {m.name: self._handler(f"/{service.full_name}/{m.name}",
                                          m.client_streaming, m.server_streaming)
                    for m in service.methods}
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service.full_name, handlers),))
        self._server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def forward_to(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target, options=_UNLIMITED)

    def close(self) -> None:
        self._server.stop(grace=None)
        if self._channel is not None:
            self._channel.close()

    def _handler(self, method: str, client_streaming: bool, server_streaming: bool
                 ) -> grpc.RpcMethodHandler:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            if self._channel is None:
                context.abort(grpc.StatusCode.UNAVAILABLE, "relay: no provider behind it yet")
            if method.rsplit("/", 1)[1] in self.dropped:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"relay: {method} dropped")
            if method.endswith("/Answer") and self.hook is not None:
                self.hook()
            metadata = [(k, v) for k, v in context.invocation_metadata()
                        if not k.startswith(_HOP_BY_HOP)]
            timeout = context.time_remaining()
            kinds = {(False, False): self._channel.unary_unary,  # type: ignore[union-attr]
                     (False, True): self._channel.unary_stream,  # type: ignore[union-attr]
                     (True, False): self._channel.stream_unary,  # type: ignore[union-attr]
                     (True, True): self._channel.stream_stream}  # type: ignore[union-attr]
            stub = kinds[(client_streaming, server_streaming)](method)
            try:
                reply = stub(request, timeout=timeout, metadata=metadata)
                if server_streaming:
                    return _forward_stream(reply, context)
                return reply
            except grpc.RpcError as exc:  # the provider's status, passed on unchanged
                context.abort(exc.code(), exc.details() or "")

        kinds = {(False, False): grpc.unary_unary_rpc_method_handler,
                 (False, True): grpc.unary_stream_rpc_method_handler,
                 (True, False): grpc.stream_unary_rpc_method_handler,
                 (True, True): grpc.stream_stream_rpc_method_handler}
        return kinds[(client_streaming, server_streaming)](call)


def _forward_stream(reply: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    try:
        yield from reply
    except grpc.RpcError as exc:
        context.abort(exc.code(), exc.details() or "")


class HeldAnswer:
    """A ``before_answer`` hook: once armed, holds the ``held``-th answer until released.

    With ``held=3`` the arbiter waits for round 2's first answer with round 1 committed: a
    signal or a kill then lands in the middle of a dispute whatever the machine's speed, and
    the dispute cannot end before it. The hold gives up after ``max_hold_s`` (keep it inside
    the arbiter's answer deadline, so a forgotten release never becomes a silence).
    ``arm`` again to hold another answer of a later dispute.
    """

    def __init__(self, held: int = 3, max_hold_s: float = 45.0) -> None:
        self.held = held
        self.max_hold_s = max_hold_s
        self.armed = False
        self.seen = 0
        self.reached = threading.Event()
        self.release = threading.Event()

    def arm(self, held: int | None = None) -> None:
        """Count answers from now on and hold the ``held``-th (default: as constructed)."""
        self.release.set()  # an answer still held from before goes on
        self.held = self.held if held is None else held
        self.seen = 0
        self.reached = threading.Event()
        self.release = threading.Event()
        self.armed = True

    def disarm(self) -> None:
        """Stop counting and let a held answer go."""
        self.armed = False
        self.release.set()

    def __call__(self, _n: int) -> None:
        if not self.armed:
            return
        self.seen += 1
        if self.seen == self.held:
            reached, release = self.reached, self.release
            reached.set()
            release.wait(timeout=self.max_hold_s)
