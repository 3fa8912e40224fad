"""The arbiter's rulings: small pure functions, one per decision.

Why so small: every path by which a party can lose must be easy to audit for the one property
that matters — an honest party never loses (Canetti, Riva, Rothblum 2011; Verde, Arun et al.
2025). A party loses only (1) for breaking a protocol rule in its own answers (checked against
its own commitments, ``verde.protocol.dispute.checks``), or (2) when the one value the arbiter
computes itself differs from the value the party committed to. The arbiter computes that value from
inputs whose digests both parties committed to (agreed), or from the spec alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PARTIES = ("a", "b")


def other(party: str) -> str:
    return "b" if party == "a" else "a"


def losers_of_faults(faulted: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """Parties that broke a rule lose; the other wins if it did not."""
    losers = tuple(p for p in PARTIES if p in faulted)
    winner = None if len(losers) != 1 else other(losers[0])
    return winner, losers


def rule_on_value(expected: Any, claims: Mapping[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """The party whose claim equals the value the arbiter derived wins; if neither, both lose.

    Both matching cannot happen here (the claims differ by construction of the descent); it is
    ruled as "nobody loses" rather than blaming anyone.
    """
    matching = [p for p in PARTIES if claims[p] == expected]
    if len(matching) == 2:
        return None, ()
    if len(matching) == 1:
        return matching[0], (other(matching[0]),)
    return None, PARTIES


def round_complete(asked: Sequence[str], outcomes: Mapping[str, Any]) -> bool:
    """A round is decided once every party asked has answered or missed its deadline."""
    return all(p in outcomes for p in asked)


def max_rounds(n_steps: int, n_nodes: int) -> int:
    """Bound on query rounds: ceil(log2(T+1)) + ceil(log2(nodes)) + 4 (leaves, commit, leaf,
    inputs)."""
    return _ceil_log2(n_steps + 1) + _ceil_log2(max(n_nodes, 1)) + 4


def _ceil_log2(n: int) -> int:
    return max(0, (n - 1).bit_length())
