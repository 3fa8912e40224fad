"""Errors raised by ``verde.robust``.

Conditions on the number of workers ``n`` and the number of faulty workers ``f`` are argument
errors, so :class:`BreakdownConditionError` is also a ``ValueError``: a caller that asks a rule
to tolerate more faults than it can is passing a bad argument.
"""

from __future__ import annotations

from verde.errors import VerdeError, VerdeInputError


class RobustError(VerdeError):
    """Root of every error ``verde.robust`` raises on purpose."""


class RobustInputError(RobustError, VerdeInputError):
    """The worker vectors themselves are unusable (empty, ragged, mixed types, not floating)."""


class BreakdownConditionError(RobustError, VerdeInputError):
    """``n`` and ``f`` violate the condition under which a rule is robust (e.g. Krum n >= 2f+3)."""


class UnknownNameError(RobustError, KeyError):
    """A registry lookup named an aggregator, pre-aggregator or attack that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it a readable sentence.
        return str(self.args[0]) if self.args else ""


class DeterministicModeUnavailableError(RobustError, NotImplementedError):
    """``deterministic=True`` needs ``repops.reproducible()``, which this install does not have."""


class ApproximationWarning(UserWarning):
    """An exact rule (MDA, SMEA) fell back to a heuristic because exact search was too large."""
