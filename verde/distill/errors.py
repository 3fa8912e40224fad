"""Errors raised by ``verde.distill``.

Bad arguments raise :class:`DistillArgumentError` (a ``ValueError``), so callers that only know
the standard library can still catch them; states the caller could not check up front (a
verifier used before it is trained, a dispute that finds no honest answer) raise precise
subclasses of :class:`verde.errors.VerdeError`.
"""

from __future__ import annotations

from verde.errors import VerdeError, VerdeInputError


class DistillError(VerdeError):
    """Root of every error ``verde.distill`` raises on purpose."""


class DistillArgumentError(DistillError, VerdeInputError):
    """An argument is out of range or of the wrong kind; the message names it."""


class ShapeMismatchError(DistillArgumentError):
    """Two tensors that must describe the same requests have incompatible shapes."""


class NotTrainedError(DistillError):
    """A verifier, detector or re-classifier was used before it was trained or calibrated."""


class EscalationError(DistillError):
    """Escalating a flagged request failed: no answer could be verified."""


class NoHonestAnswerError(EscalationError):
    """The referee's recomputation matched neither answer, so both providers lose."""
