"""Fixtures for the refereed-delegation tests: tiny jobs, shared honest runs, fixed keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proofs import SigningKey
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.provider.provider import Provider


@pytest.fixture(autouse=True, scope="session")
def _one_numba_thread() -> Iterator[None]:
    """Results never depend on it (repops' promise); on a shared 2-core box it is faster."""
    from repops import _numba

    _numba.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def tmp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory shared by one test module (its datasets and model directories)."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


def tiny_spec(**changes: Any) -> JobSpec:
    doc: dict[str, Any] = {
        "program": "mlp",
        "config": {"hidden": 16},
        "dataset": {"name": "digits"},
        "optimizer": {"name": "adam", "lr": 0.01},
        "steps": 12,
        "batch_size": 8,
        "seed": 3,
        "checkpoint_interval": 4,
    }
    doc.update(changes)
    return JobSpec.from_mapping(doc)


def key(label: str) -> SigningKey:
    return SigningKey.from_seed(label.encode().ljust(32, b"\0")[:32])


@pytest.fixture(scope="session")
def spec() -> JobSpec:
    return tiny_spec()


@pytest.fixture(scope="session")
def honest(spec: JobSpec) -> Provider:
    provider = Provider(key("honest"), "honest")
    provider.submit(spec)
    return provider


@pytest.fixture(scope="session")
def honest2(spec: JobSpec) -> Provider:
    provider = Provider(key("honest-2"), "honest-2")
    provider.submit(spec)
    return provider
