"""Errors of coded computation over providers."""

from __future__ import annotations

from verde.errors import VerdeInputError


class CodedInputError(VerdeInputError):
    """A coded computation's input is wrong: a file missing, unreadable or of the wrong kind,
    or providers that cannot carry the scheme (too few, or one holding every copy)."""
