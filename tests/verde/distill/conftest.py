"""Shared fixtures: the digits set-up is trained once per test session (seeded)."""

from __future__ import annotations

import pytest
import torch

from verde.distill.attacks import Attack
from verde.distill.digits import DigitsSetup, digits_attacks, prepare_digits


@pytest.fixture(scope="session")
def digits() -> DigitsSetup:
    torch.manual_seed(0)
    return prepare_digits(seed=0)


@pytest.fixture(scope="session")
def attacks(digits: DigitsSetup) -> dict[str, Attack]:
    return {a.name: a for a in digits_attacks(digits, seed=0)}
