"""Shared fixtures: the digits set-up is trained once per test session (seeded)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from verde.distill.attacks import Attack
from verde.distill.digits import DigitsSetup, digits_attacks, prepare_digits


@pytest.fixture(scope="session")
def digits() -> Iterator[DigitsSetup]:
    # One intra-op thread while training: the CI box has 2 cores shared with other suites, and
    # oversubscribed OpenMP threads slow small-model training down severalfold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        setup = prepare_digits(seed=0)
    finally:
        torch.set_num_threads(threads)
    yield setup


@pytest.fixture(scope="session")
def attacks(digits: DigitsSetup) -> dict[str, Attack]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {a.name: a for a in digits_attacks(digits, seed=0)}
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train small models on one intra-op thread (see ``digits``), restoring the count after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
