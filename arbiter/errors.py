"""Errors of the services layer. ``ArbiterError`` is the root (a :class:`VerdeError`)."""

from __future__ import annotations

from verde.errors import VerdeError, VerdeInputError


class ArbiterError(VerdeError):
    """Root of every error the arbiter and provider services raise on purpose."""


class ArbiterInputError(ArbiterError, VerdeInputError):
    """A request, flag or setting of the services is malformed (INVALID_ARGUMENT, exit 3)."""


class StorageError(ArbiterError):
    """The database could not be opened, migrated or written."""


class OtherProtocol(ArbiterError):
    """A stored dispute was opened under another protocol version than this release speaks
    (a database carried across an upgrade that changed job ids or commitments): it cannot be
    resumed, and it ends without a verdict, so nobody loses for the upgrade."""


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


class Unauthenticated(ArbiterError):
    """A request's signature is missing, malformed, wrong, stale or replayed
    (UNAUTHENTICATED)."""


class NotAllowed(ArbiterError):
    """A correctly signed request from a key that is not on the service's allow list
    (PERMISSION_DENIED)."""


class QuotaExceeded(ArbiterError):
    """A client already holds as much of a service as its per-client quota allows
    (RESOURCE_EXHAUSTED); the message names the quota."""


class StreamTooSlow(ArbiterError):
    """An upload stream stayed idle, or open, longer than the service allows
    (DEADLINE_EXCEEDED)."""
