"""A service's access policy: who may start work, how much each client may hold, what a job
may cost, and how long an upload may take — the settings of ``verde provider serve`` and
``verde arbiter serve`` turned into the gRPC interceptors and limits that enforce them.

Without an allow list the service is open (the loopback demo mode): it still checks the
signatures it is given, counts quotas per key or per host, and keeps every budget, but logs one
warning at start, because anyone who can reach it can make it work.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from arbiter.caller_auth import CallerGate
from arbiter.client_quotas import QuotaLimits
from arbiter.logs import log_event
from arbiter.request_signing import DEFAULT_WINDOW_S, RequestVerifier, load_allow_list
from arbiter.stream_guard import (
    DEFAULT_IDLE_S,
    DEFAULT_MAX_S,
    DEFAULT_MAX_STREAMS,
    DEFAULT_REPLY_MAX_S,
    StreamGuard,
)
from verde.protocol.graph.budget import Budget

log = logging.getLogger("verde.service")


@dataclass(frozen=True)
class AccessPolicy:
    """Everything a service enforces on its callers (see the module docstring)."""

    allow_clients: Path | None = None
    request_window_s: float = DEFAULT_WINDOW_S
    budget: Budget = field(default_factory=Budget)
    quotas: QuotaLimits = field(default_factory=QuotaLimits)
    upload_idle_s: float = DEFAULT_IDLE_S
    upload_max_s: float = DEFAULT_MAX_S
    max_uploads: int = DEFAULT_MAX_STREAMS
    reply_max_s: float = DEFAULT_REPLY_MAX_S

    def guards(self, service: str, gated: Collection[str],
               uploads: Collection[str] = ()) -> AccessGuards:
        """The stream guard (outermost: it times the upload the gate reads; ``uploads`` are
        the client-streaming methods it bounds, streamed replies are bounded on every
        service) and the caller gate for ``gated`` methods; reads the allow list now, so a
        bad one stops the start."""
        allowed = load_allow_list(self.allow_clients) if self.allow_clients else None
        verifier = RequestVerifier(allowed, window_s=self.request_window_s)
        return AccessGuards(service, tuple(sorted(gated)), allowed, [
            StreamGuard(uploads, idle_s=self.upload_idle_s, max_s=self.upload_max_s,
                        max_streams=self.max_uploads, reply_max_s=self.reply_max_s),
            CallerGate(gated, verifier)])


@dataclass(frozen=True)
class AccessGuards:
    """A policy's interceptors, and the line the service logs once it has started."""

    service: str
    gated: tuple[str, ...]
    allowed: frozenset[str] | None
    interceptors: list[grpc.ServerInterceptor]

    def log_started(self) -> None:
        """One warning for an open service, one info line naming the list's size otherwise."""
        if self.allowed is None:
            log_event(log, logging.WARNING, "service.open",
                      f"{self.service}: no --allow-clients list, so anyone who can reach "
                      f"this address may call {', '.join(self.gated)} (fine on loopback for "
                      "demos; give an allow list anywhere else)",
                      service=self.service, methods=list(self.gated))
        else:
            log_event(log, logging.INFO, "service.allow_list",
                      f"{self.service}: {len(self.allowed)} client keys may call "
                      f"{', '.join(self.gated)}", service=self.service,
                      clients=len(self.allowed))
