"""Errors of the step-graph layer (under ``VerdeError``)."""

from __future__ import annotations

from verde.errors import VerdeError


class GraphError(VerdeError):
    """Root of the errors raised by ``verde.protocol.graph``."""


class TraceError(GraphError):
    """A step cannot be traced into a re-executable graph (the message says which op and why)."""
