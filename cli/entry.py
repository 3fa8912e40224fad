"""The ``verde`` console script: process-wide defaults, then the command line (``cli.main``).

Why a module of its own: gRPC's C core reads ``GRPC_VERBOSITY`` once, when grpc is first
imported, and ``cli.main`` imports grpc through the commands. Left at its default the core
writes INFO lines (a peer's GOAWAY on shutdown, for one) straight to stderr, in the middle of
a service's ``--log-format json`` stream, where every line must be one JSON document. So the
entry point lowers it to errors before anything imports grpc; an operator who sets
``GRPC_VERBOSITY`` (or ``GRPC_TRACE``) to debug the transport still gets what they asked for.
"""

from __future__ import annotations

import os


def apply_process_defaults() -> None:
    """Environment defaults that must be in place before grpc is imported."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def main(argv: list[str] | None = None) -> None:
    apply_process_defaults()
    from cli.main import main as run_command_line

    run_command_line(argv)
