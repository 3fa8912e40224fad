"""Shared fixtures: the digits set-up is trained once per test session (seeded)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from scipy import stats

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


#: Confidence of the sampling-error bounds the tests allow (as in test_detector.py).
CONFIDENCE = 0.999


def _allowed_misses(requests: int, rate: float) -> int:
    return int(stats.binom.ppf(CONFIDENCE, requests, 1.0 - rate))


@pytest.fixture(scope="session")
def allowed_misses() -> Callable[[int, float], int]:
    """``allowed_misses(requests, rate)``: the 99.9% quantile of the misses of a detector that
    flags each tampered request with probability ``rate``, i.e. of Binomial(requests, 1 - rate).

    The digits models are trained with plain torch, whose last bits, and so the trained weights
    and every measured rate, differ between CPUs, BLAS builds and thread counts. A test states
    the rate the detector has and allows this sampling error around it, so a detector that meets
    its rate fails with probability at most 0.1% on any machine.
    """
    return _allowed_misses
