"""Errors of the peer layer (under ``VerdeError``)."""

from __future__ import annotations

from verde.errors import VerdeError, VerdeInputError


class PeerError(VerdeError):
    """A peer could not be reached or sent something unreadable."""


class PeerTimeout(PeerError):
    """A peer did not answer before the query's deadline (the dispute treats it as a loss)."""


class RefusedQuery(PeerError):
    """Raised by a provider that will not answer a query (the transport turns it into a timeout)."""


class InvalidStateEntries(PeerError):
    """Fetched state entries do not prove what was asked against the committed state root."""


class StateRootMismatch(PeerError):
    """A provider acknowledged an uploaded state under another root than the uploader's."""


class MalformedMessage(PeerError, VerdeInputError):
    """A protocol message does not have the fields and types its kind prescribes."""
