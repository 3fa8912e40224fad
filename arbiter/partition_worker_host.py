"""Partition workers on other machines: ``verde provider worker`` and the provider's side of
its connection.

A provider whose jobs cut their steps into partitions (``partitions = P``) can compute them on
worker processes of its own machine (``--workers W``) and on workers of other machines
(``--worker-at HOST:PORT``, each one ``verde provider worker --listen HOST:PORT``). The
commitments are those of one process whatever the workers (``verde.protocol.provider
.workers``). Provider and worker share a secret and every frame between them is authenticated
(``verde.protocol.provider.worker_channel``: a worker that is not the provider's own must never
be able to make it commit to a wrong state). One TCP connection carries one provider's requests
in order; a worker serves several connections, each on its own thread.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from arbiter.errors import ArbiterInputError
from arbiter.logs import log_event
from verde.protocol.provider.partition_worker import FrameError, answer
from verde.protocol.provider.worker_channel import WorkerChannel, load_worker_secret
from verde.protocol.provider.workers import ChannelLink, LinkOpener

log = logging.getLogger("verde.service")

#: Seconds a connection has to finish the handshake (both ways).
HANDSHAKE_TIMEOUT_S = 30.0
#: Connections a worker serves at once (each is one provider's; more are closed at once, so
#: strangers who never finish the handshake cannot hold a thread each).
MAX_CONNECTIONS = 32
#: TCP keepalive of a link (idle seconds, probe interval, probes): a worker machine that
#: vanished without closing the connection fails the step in about two minutes instead of
#: leaving the provider waiting forever.
KEEPALIVE = (60, 10, 6)


def _keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle, interval, count = KEEPALIVE
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval),
                        ("TCP_KEEPCNT", count)):
        if hasattr(socket, name):  # Linux and most others; elsewhere the system's defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def load_secret(path: Path) -> bytes:
    """The worker secret in ``path``, or one :class:`ArbiterInputError` naming the file."""
    try:
        return load_worker_secret(path)
    except ValueError as exc:
        raise ArbiterInputError(str(exc)) from None


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` as (host, port), or one :class:`ArbiterInputError`."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ArbiterInputError(f"worker address {address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def remote_worker(address: str, secret: bytes) -> LinkOpener:
    """How to open a link to the worker at ``address`` (the provider calls it on first use)."""
    host, port = split_address(address)

    def open_link() -> ChannelLink:
        try:
            sock = socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT_S)
        except OSError as exc:
            raise FrameError(f"worker at {address}: cannot connect ({exc})") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _keepalive(sock)
            stream = sock.makefile("rwb")
            try:
                channel = WorkerChannel.provider_side(stream, stream, secret)
            except (FrameError, OSError) as exc:
                raise FrameError(f"worker at {address}: {exc}") from exc
            sock.settimeout(None)  # a step takes as long as it takes
        except BaseException:
            sock.close()
            raise

        def close() -> None:
            stream.close()
            sock.close()

        return ChannelLink(channel, f"worker at {address}", close)

    return open_link


@dataclass
class PartitionWorkerServer:
    """A worker listening for providers: each connection is authenticated, then served
    request by request (``partition_worker.answer``) until the provider closes it."""

    listen: str
    secret: bytes
    name: str = "partition worker"
    #: Requests answered so far, over every connection (tests and logs).
    answered: int = field(default=0, init=False)
    _sock: socket.socket = field(init=False, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False, repr=False)
    _closing: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        host, port = split_address(self.listen)
        try:
            self._sock = socket.create_server((host, port))
        except OSError as exc:
            raise ArbiterInputError(f"cannot listen on {self.listen}: {exc}") from None
        acceptor = threading.Thread(target=self._accept, name="worker-accept", daemon=True)
        acceptor.start()
        self._threads.append(acceptor)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, peer = self._sock.accept()
            except OSError:
                return  # closed
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) > MAX_CONNECTIONS:  # the acceptor is one of them
                log_event(log, logging.WARNING, "worker.busy",
                          f"refused a connection from {peer[0]}:{peer[1]}: already serving "
                          f"{MAX_CONNECTIONS} connections", peer=f"{peer[0]}:{peer[1]}")
                conn.close()
                continue
            worker = threading.Thread(target=self._serve, args=(conn, peer),
                                      name=f"worker-{peer[1]}", daemon=True)
            worker.start()
            self._threads.append(worker)

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        who = f"{peer[0]}:{peer[1]}"
        with conn, contextlib.suppress(OSError):
            conn.settimeout(HANDSHAKE_TIMEOUT_S)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = conn.makefile("rwb")
            try:
                channel = WorkerChannel.worker_side(stream, stream, self.secret)
            except (FrameError, OSError) as exc:
                log_event(log, logging.WARNING, "worker.refused",
                          f"refused a connection from {who}: {exc}", peer=who)
                return
            conn.settimeout(None)
            _keepalive(conn)
            log_event(log, logging.INFO, "worker.connected", f"provider at {who} connected",
                      peer=who)
            try:
                while not self._closing.is_set() and (frame := channel.receive()) is not None:
                    channel.send(*answer(*frame))
                    self.answered += 1
            except FrameError as exc:
                log_event(log, logging.WARNING, "worker.dropped",
                          f"dropped the connection from {who}: {exc}", peer=who)
            except Exception as exc:  # a bug computing a step: say so, keep serving others
                log_event(log, logging.ERROR, "worker.failed",
                          f"failed serving {who}: {type(exc).__name__}: {exc}", peer=who)

    def drain(self, timeout_s: float) -> bool:
        """Take no new connections; the ones open end when their provider closes them."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress (close won't)
        with contextlib.suppress(OSError):
            self._sock.close()
        return True

    def close(self) -> None:
        self.drain(0.0)
