"""A service's life: started, serving, draining on SIGTERM, stopped.

SIGTERM (or SIGINT) starts a graceful drain: the service refuses new work with UNAVAILABLE and
reports NOT_SERVING to health checks (load balancers move on), finishes what is in flight
within ``--drain-timeout`` — a provider its running job, an arbiter the round each of its
disputes is in, after which it releases their leases so another arbiter on the same database
takes them over at once — and then stops. A second signal stops it at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from grpc_health.v1 import health

from arbiter.channels import DEFAULT_MAX_MESSAGE, TlsFiles, build_server
from arbiter.interceptors import CallObserver, DrainGate, ObservedCall
from arbiter.logs import log_event
from arbiter.metrics import Metrics

log = logging.getLogger("verde.service")


class Service(Protocol):
    """What :func:`serve_until_signalled` needs of a running service."""

    name: str

    def drain(self, timeout_s: float) -> bool:
        """Stop taking new work and finish in-flight work; False if time ran out."""

    def close(self) -> None:
        """Stop serving and release every resource."""


@dataclass
class Endpoint:
    """A service's started gRPC server, with the gate and health status draining flips."""

    server: grpc.Server
    port: int
    gate: DrainGate
    health: health.HealthServicer

    def refuse_new_work(self) -> None:
        """New work gets UNAVAILABLE, health checks NOT_SERVING; everything else is served."""
        self.gate.close()
        self.health.enter_graceful_shutdown()


class RunningService:
    """What a running provider and a running arbiter share: the endpoint and the metrics."""

    endpoint: Endpoint
    metrics: Metrics | None

    @property
    def server(self) -> grpc.Server:
        return self.endpoint.server

    @property
    def port(self) -> int:
        return self.endpoint.port

    def stop_serving(self, grace_s: float) -> None:
        """Stop the gRPC server (calls in flight get ``grace_s``) and the metrics endpoint."""
        self.endpoint.server.stop(grace_s).wait()
        if self.metrics is not None:
            self.metrics.close()


def open_endpoint(listen: str, register: Callable[[grpc.Server], None], *,
                  new_work: Sequence[str], observe_call: ObservedCall | None = None,
                  tls: TlsFiles | None = None, max_message: int = DEFAULT_MAX_MESSAGE,
                  cleanup: Callable[[], None] = lambda: None,
                  guards: Sequence[grpc.ServerInterceptor] = ()) -> Endpoint:
    """Start the server: ``new_work`` methods behind a drain gate, then ``guards`` (caller
    authentication, upload limits: :class:`arbiter.access.AccessPolicy`), every call reported
    to ``observe_call`` (metrics); ``cleanup`` runs if it cannot start."""
    gate = DrainGate(new_work)
    interceptors: list[grpc.ServerInterceptor] = [gate, *guards]
    if observe_call is not None:
        interceptors.insert(0, CallObserver(observe_call))  # it sees the gate's refusals too
    health_servicer = health.HealthServicer()
    try:
        server, port = build_server(listen, register, tls=tls, max_message=max_message,
                                    interceptors=interceptors, health_servicer=health_servicer)
    except Exception:
        cleanup()
        raise
    return Endpoint(server, port, gate, health_servicer)


def serve_until_signalled(service: Service, drain_timeout_s: float) -> None:
    """Block until SIGTERM or SIGINT, then drain (up to ``drain_timeout_s``) and close."""
    received: list[int] = []
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.wait()
    finally:
        # A second signal ends the process at once, the way operators expect.
        for s in previous:
            signal.signal(s, signal.SIG_DFL)
    name = signal.Signals(received[0]).name if received else "stop"
    log_event(log, logging.INFO, "service.draining",
              f"{service.name} draining ({name}): no new work, finishing in-flight work",
              service=service.name, signal=name, timeout_s=drain_timeout_s)
    start = time.monotonic()
    finished = service.drain(drain_timeout_s)
    if not finished:
        log_event(log, logging.WARNING, "service.drain_timeout",
                  f"{service.name}: in-flight work did not finish within {drain_timeout_s:g}s",
                  service=service.name)
    service.close()
    log_event(log, logging.INFO, "service.stopped", f"{service.name} stopped",
              service=service.name, drain_s=round(time.monotonic() - start, 3))


def announce(service: str, identity: str, listen: str, port: int, *,
             identity_field: str = "public_key", **fields: object) -> None:
    """The ``<service> <key> listening on HOST:PORT`` line (tests and scripts read the port).

    ``identity`` is logged as ``identity_field`` (a service without a key names itself
    otherwise); ``fields`` (metrics address, database URL without its password, owner, fault
    plan...) are added when set.
    """
    host = listen.rsplit(":", 1)[0]
    extra = {k: v for k, v in fields.items() if v}
    details = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in extra.items())
    log_event(log, logging.INFO, "service.started",
              f"{service} {identity[:16]} listening on {host}:{port}"
              + (f" ({details})" if details else ""),
              service=service, address=f"{host}:{port}", **{identity_field: identity}, **extra)
