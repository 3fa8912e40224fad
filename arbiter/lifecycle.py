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
from typing import Protocol

from grpc_health.v1 import health

from arbiter.logs import log_event

log = logging.getLogger("verde.service")


class Service(Protocol):
    """What :func:`serve_until_signalled` needs of a running service."""

    name: str

    def drain(self, timeout_s: float) -> bool:
        """Stop taking new work and finish in-flight work; False if time ran out."""

    def close(self) -> None:
        """Stop serving and release every resource."""


def stop_serving(health_servicer: health.HealthServicer) -> None:
    """Report NOT_SERVING for every service name (the server keeps answering calls)."""
    health_servicer.enter_graceful_shutdown()


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


def announce(service: str, identity: str, listen: str, port: int, **fields: object) -> None:
    """The ``<service> <key> listening on HOST:PORT`` line (tests and scripts read the port).

    ``fields`` (metrics address, database URL without its password, owner, fault plan...)
    are added when set.
    """
    host = listen.rsplit(":", 1)[0]
    extra = {k: v for k, v in fields.items() if v}
    details = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in extra.items())
    log_event(log, logging.INFO, "service.started",
              f"{service} {identity[:16]} listening on {host}:{port}"
              + (f" ({details})" if details else ""),
              service=service, public_key=identity, address=f"{host}:{port}", **extra)
