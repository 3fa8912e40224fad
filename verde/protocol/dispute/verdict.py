"""The outcome of a dispute: who lost, why, and the evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """``losers`` ⊆ {"a", "b"}; ``winner`` is the other party, or ``None`` if both lost.

    ``reason`` is ``fault`` (a party broke a protocol rule: ``faults`` maps it to the rule and
    evidence), ``initial_state`` (the parties disagreed on state 0 and the arbiter derived it
    from the spec), ``recomputed_operator`` (the arbiter re-executed the first differing node)
    or ``recomputed_commit`` (the first differing node is the commitment to the step's state,
    recomputed from agreed digests).
    """

    winner: str | None
    losers: tuple[str, ...]
    reason: str
    faults: dict[str, Any] = field(default_factory=dict)
    ruling: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"winner": self.winner, "losers": list(self.losers), "reason": self.reason,
                "faults": self.faults, "ruling": self.ruling}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        return cls(data["winner"], tuple(data["losers"]), data["reason"], dict(data["faults"]),
                   dict(data["ruling"]))  # fmt: skip
