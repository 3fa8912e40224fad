"""Running a service until it is told to stop (SIGINT/SIGTERM), for the CLI's ``serve`` commands."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import grpc


def serve_until_signalled(server: grpc.Server, on_stop: Callable[[], None] | None = None,
                          grace_s: float = 2.0) -> None:
    """Block until SIGINT or SIGTERM, then stop the server gracefully."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.wait()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if on_stop is not None:
            on_stop()
        server.stop(grace_s).wait()
