"""Shared by the integration tests: providers in this process run numba in one thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_numba_thread() -> Iterator[None]:
    """One numba thread per provider: several in-process providers share this machine's cores."""
    from repops import _numba

    _numba.set_num_threads(1)
    yield
