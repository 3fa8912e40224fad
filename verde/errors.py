"""Errors raised by verde. ``VerdeError`` is the root for the whole verde package family."""

from __future__ import annotations


class VerdeError(Exception):
    """Root of every error verde raises on purpose."""
