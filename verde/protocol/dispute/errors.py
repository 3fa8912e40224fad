"""Errors of the dispute logic (under ``VerdeError``)."""

from __future__ import annotations

from typing import Any

from verde.errors import VerdeError, VerdeInputError


class DisputeError(VerdeError):
    """Root of the errors raised by ``verde.protocol.dispute``."""


class NoDisputeError(DisputeError):
    """The two results are equal: there is nothing to dispute."""


class DisputeFinished(DisputeError):
    """An event arrived for a dispute that already has a verdict."""


class InvalidEvent(DisputeError, VerdeInputError):
    """An event is malformed or does not belong to this dispute's current state."""


class InvalidVerdictCertificate(DisputeError):
    """A verdict certificate's body does not replay to the verdict it states."""


class Fault(DisputeError):
    """A party broke a rule (raised by the checks, caught by the state machine).

    ``code`` names the rule (``missed_deadline``, ``equivocation``, ``inconsistent_answer``,
    ``invalid_signature``, ``invalid_result``, ``wrong_graph``, ``bad_input``, ``malformed``),
    ``evidence`` is JSON that shows it.
    """

    def __init__(self, code: str, detail: str, evidence: Any = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.evidence = evidence

    def to_json(self) -> dict[str, Any]:
        """The fault as a verdict records it."""
        return {"code": self.code, "detail": self.detail, "evidence": self.evidence}
