"""Providers for the operations tests, started from config files like an operator does.

One honest provider and one that corrupts an operator, each ``verde provider serve --config
FILE`` with JSON logs and a Prometheus endpoint, shared by the tests of a session that need
disputes (each test uses its own job and its own arbiter and database).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.procs import Cluster, Service, job_spec, write_config

CHEAT = "compute=corrupt_op,step=5"


@pytest.fixture(scope="session")
def config_providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("config-providers"))
    try:
        specs = []
        for name, fault in (("cfg-honest", None), ("cfg-cheat", CHEAT)):
            settings: dict[str, object] = {
                "key": f"{name}.pem", "listen": "127.0.0.1:0", "metrics": "127.0.0.1:0",
                "log_format": "json"}
            if fault:
                settings["fault"] = fault
            cluster.key(name)
            config = write_config(cluster.workdir / f"{name}.toml", "provider", **settings)
            specs.append((name, ["provider", "serve", "--config", str(config)]))
        honest, cheat = cluster.start_many(specs)
        yield {"cluster": cluster, "honest": honest, "cheat": cheat}
    finally:
        cluster.stop_all()


def signed_entries(providers: dict[str, Any], seed: int) -> list[tuple[str, str]]:
    """(address, signed result JSON) of the honest and the cheating provider for job ``seed``
    (trained on both first), in that order: a dispute's two entries."""
    from arbiter.provider_client import GrpcProviderPeer

    spec = job_spec(seed=seed)
    entries = []
    services: list[Service] = [providers["honest"], providers["cheat"]]
    peers = [GrpcProviderPeer(svc.address) for svc in services]
    try:
        for peer in peers:
            peer.submit(spec)
        for svc, peer in zip(services, peers, strict=True):
            peer.wait(spec_id := peer.submit(spec), timeout_s=600)
            entries.append((svc.address, json.dumps(peer.result(spec_id).to_json(),
                                                    sort_keys=True)))
    finally:
        for peer in peers:
            peer.close()
    return entries
