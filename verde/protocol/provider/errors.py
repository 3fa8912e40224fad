"""Errors raised by the provider package (under ``VerdeError``)."""

from __future__ import annotations

from verde.errors import VerdeError, VerdeInputError


class ProviderError(VerdeError):
    """Root of the errors raised by ``verde.protocol.provider``."""


class UnknownQueryError(ProviderError, VerdeInputError):
    """A query names a kind, step or position this provider cannot answer."""


class MissingInitialState(ProviderError):
    """A job starts from an uploaded state 0 (``init``) that this provider does not hold."""


class StateTooLarge(ProviderError):
    """An uploaded state is larger than the limit of the store or transport receiving it."""


class InvalidUpload(ProviderError, VerdeInputError):
    """An uploaded state is not a non-empty mapping of entry names to tensors."""


class StoredUploadDamaged(ProviderError):
    """An upload this provider wrote to its disk can no longer be read back whole."""
