"""Errors of the services layer. ``ArbiterError`` is the root (a :class:`VerdeError`)."""

from __future__ import annotations

from verde.errors import VerdeError, VerdeInputError


class ArbiterError(VerdeError):
    """Root of every error the arbiter and provider services raise on purpose."""


class ArbiterInputError(ArbiterError, VerdeInputError):
    """A request, flag or setting of the services is malformed (INVALID_ARGUMENT, exit 3)."""


class StorageError(ArbiterError):
    """The database could not be opened, migrated or written."""


class NotFound(ArbiterError):
    """A job, result or dispute id that the store does not know."""


class LeaseLost(ArbiterError):
    """Another arbiter process took over this dispute (its lease expired): stop working on it."""


class Conflict(ArbiterError):
    """A write contradicts what is already stored (maps to FAILED_PRECONDITION)."""


class ConflictingResult(Conflict):
    """A provider already has a different signed result stored for the same job."""


class ConflictingJob(Conflict):
    """A job id is already stored with a different spec."""
