"""Fixtures of the end-to-end tests: clusters of real ``verde`` processes (see procs.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.e2e.procs import Cluster


@pytest.fixture
def cluster_factory(tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Callable[[str], Cluster]]:
    """Function-scoped: make clusters; every process they started is stopped afterwards."""
    made: list[Cluster] = []

    def make(name: str) -> Cluster:
        c = Cluster(tmp_path_factory.mktemp(name))
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop_all()


