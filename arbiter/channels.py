"""gRPC channels and servers with the settings every verde endpoint shares.

Message sizes are bounded (tensors stream in chunks well below the limit), every client call
carries a deadline, transient failures (UNAVAILABLE) are retried with exponential backoff, and
TLS is used when certificates are given. Standard gRPC health checking is served.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from arbiter.errors import ArbiterInputError
from arbiter.interceptors import MalformedRequests
from arbiter.status import remote_error

DEFAULT_MAX_MESSAGE = 16 << 20
T = TypeVar("T")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the server's own pair, and/or the root a client trusts."""

    cert: Path | None = None
    key: Path | None = None
    root: Path | None = None

    def server_credentials(self) -> grpc.ServerCredentials:
        if self.cert is None or self.key is None:
            raise ArbiterInputError("TLS for a server needs both --tls-cert and --tls-key")
        return grpc.ssl_server_credentials([(self.key.read_bytes(), self.cert.read_bytes())])

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root.read_bytes() if self.root else None)


def _options(max_message: int) -> list[tuple[str, int]]:
    return [("grpc.max_send_message_length", max_message),
            ("grpc.max_receive_message_length", max_message)]


def open_channel(address: str, *, tls: TlsFiles | None = None,
                 max_message: int = DEFAULT_MAX_MESSAGE) -> grpc.Channel:
    if tls is not None:
        return grpc.secure_channel(address, tls.channel_credentials(), _options(max_message))
    return grpc.insecure_channel(address, _options(max_message))


def build_server(address: str, register: Callable[[grpc.Server], None], *,
                 tls: TlsFiles | None = None, max_message: int = DEFAULT_MAX_MESSAGE,
                 workers: int = 16, interceptors: Sequence[grpc.ServerInterceptor] = (),
                 health_servicer: health.HealthServicer | None = None
                 ) -> tuple[grpc.Server, int]:
    """A started server with ``register``'s services and health checking; returns the port.

    ``interceptors`` wrap every call (metrics, draining); pass ``health_servicer`` to set the
    server NOT_SERVING later (a draining service).
    """
    server = grpc.server(ThreadPoolExecutor(max_workers=workers), options=_options(max_message),
                         interceptors=[*interceptors, MalformedRequests()])
    register(server)
    health_servicer = health_servicer or health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = (server.add_secure_port(address, tls.server_credentials()) if tls is not None
            else server.add_insecure_port(address))
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, port


def call_with_retry(what: str, fn: Callable[[], T], *, attempts: int = 4,
                    first_backoff_s: float = 0.1) -> T:
    """Call ``fn``; retry UNAVAILABLE with exponential backoff; map errors to domain errors."""
    delay = first_backoff_s
    for attempt in range(attempts):
        try:
            return fn()
        except grpc.RpcError as err:
            if err.code() is grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts:
                time.sleep(delay)
                delay *= 2
                continue
            raise remote_error(what, err) from None
    raise AssertionError("unreachable")  # pragma: no cover


def check_health(channel: grpc.Channel, timeout_s: float = 5.0) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
    except grpc.RpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING
