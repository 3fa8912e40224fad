"""Errors raised by verde. ``VerdeError`` is the root for the whole verde package family.

Two kinds matter at the boundaries (the gRPC services, the CLI): a :class:`VerdeInputError`
says the caller sent something wrong (INVALID_ARGUMENT, exit code 3) and names the input;
every other ``VerdeError`` is a deliberate refusal with its own status. Anything that is not a
package root's error is a bug and is reported as an internal error.
"""

from __future__ import annotations


class VerdeError(Exception):
    """Root of every error verde raises on purpose."""


class VerdeInputError(VerdeError, ValueError):
    """Bad input from a caller (a file, a spec, a message, an argument): the message names
    which input and what is wrong with it."""
