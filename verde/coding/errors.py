"""Errors of verde.coding (all under :class:`verde.errors.VerdeError`)."""

from __future__ import annotations

from collections.abc import Sequence

from verde.errors import VerdeError


class CodingError(VerdeError):
    """Root of the errors of verde.coding (gradient coding and coded computation)."""


class TooManyStragglers(CodingError):
    """The workers that answered do not determine the full gradient under this code."""

    def __init__(self, scheme: str, answered: Sequence[int], needed: str) -> None:
        self.scheme = scheme
        self.answered = tuple(sorted(answered))
        self.needed = needed
        super().__init__(
            f"{scheme}: cannot decode from workers {list(self.answered)}: {needed}"
        )


class NumericallyUnsafe(CodingError):
    """A cyclic-code straggler pattern whose decoding system is too badly conditioned."""

    def __init__(self, pattern: Sequence[int], condition: float, limit: float) -> None:
        self.pattern = tuple(pattern)
        self.condition = condition
        super().__init__(
            f"decoding from workers {list(self.pattern)} is numerically unsafe: condition number "
            f"{condition:.3g} exceeds the limit {limit:.3g} (use fractional repetition, or raise "
            "max_condition knowingly)"
        )


class ReplicaMismatch(CodingError):
    """Replicas of one group returned different bits: a detected fault (see verde.coding.byzantine).

    ``groups`` maps a group index to the list of worker sets that agreed with each other, so
    the caller (or the dispute referee) knows exactly who disagreed with whom.
    """

    def __init__(self, group: int, factions: Sequence[Sequence[int]], corrected: bool) -> None:
        self.group = group
        self.factions = tuple(tuple(sorted(f)) for f in factions)
        self.corrected = corrected
        desc = " vs ".join(str(list(f)) for f in self.factions)
        super().__init__(f"replicas of group {group} disagree bit for bit: workers {desc}")


class TooManyFaults(CodingError):
    """More wrong (or missing) answers than a code can locate and correct: the decoder refuses.

    Raised by the error-correcting decoders of coded computation (the DCT code of SBACC, the
    fault-tolerant Strassen-like scheme) instead of returning an estimate they cannot vouch
    for. ``suspects`` lists the workers the decoder could already tell were wrong, if any;
    ``candidates`` those that may be (when several explanations fit equally): what a referee
    recomputes first (``verde.coding.coded_compute``).
    """

    def __init__(self, scheme: str, suspects: Sequence[int], why: str, *,
                 candidates: Sequence[int] = ()) -> None:
        self.suspects = tuple(sorted(suspects))
        self.candidates = tuple(sorted(set(candidates) | set(suspects)))
        self.why = why
        super().__init__(f"{scheme}: too many faulty answers to correct: {why}")
