"""Rules and attacks by name: ``make_aggregator("krum", f=4)``, ``make_attack("alie")``.

The rule and attack modules register their classes when imported (``register_aggregator`` and
friends); this module imports every one of them, so a name lookup here sees them all.
"""

from __future__ import annotations

from typing import Any

from verde.robust import (  # noqa: F401  (imported to register their classes)
    attacks_optimal,
    bucketing,
    clipping,
    coordinate,
    flag,
    fltrust,
    geometric,
    krum,
    neighbours,
    signguard,
    spectral,
    subsets,
)
from verde.robust.attacks import ATTACKS, Attack
from verde.robust.base import AGGREGATORS, PRE_AGGREGATORS, Aggregator, PreAggregator
from verde.robust.errors import UnknownNameError


def make_aggregator(name: str, f: int = 0, **params: Any) -> Aggregator:
    """Build a registered aggregator by name: ``make_aggregator("krum", f=4)``."""
    if name not in AGGREGATORS:
        raise UnknownNameError(f"unknown aggregator {name!r}; known: {sorted(AGGREGATORS)}")
    return AGGREGATORS[name](f=f, **params)


def make_pre_aggregator(name: str, f: int = 0, **params: Any) -> PreAggregator:
    """Build a registered pre-aggregator by name: ``make_pre_aggregator("nnm", f=4)``."""
    if name not in PRE_AGGREGATORS:
        raise UnknownNameError(f"unknown pre-aggregator {name!r}; known: "
                               f"{sorted(PRE_AGGREGATORS)}")
    return PRE_AGGREGATORS[name](f=f, **params)


def make_attack(name: str, **params: Any) -> Attack:
    """Build a registered attack by name: ``make_attack("alie")``."""
    if name not in ATTACKS:
        raise UnknownNameError(f"unknown attack {name!r}; known: {sorted(ATTACKS)}")
    return ATTACKS[name](**params)
