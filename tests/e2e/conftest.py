"""Providers for the operations tests, started from config files like an operator does.

One honest provider and one that corrupts an operator, each ``verde provider serve --config
FILE`` with JSON logs and a Prometheus endpoint, shared by the tests of a session that need
disputes (each test uses its own job and its own arbiter and database).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.procs import Cluster, Service, job_spec, write_config
from tests.e2e.relay import AnswerHook, ProviderRelay

CHEAT = "compute=corrupt_op,step=5"


def start_config_providers(cluster: Cluster, advertise: dict[str, str] | None = None
                           ) -> tuple[Service, Service]:
    """The honest and the cheating provider (``cfg-honest``, ``cfg-cheat``), each from a
    config file; ``advertise`` maps a name to the address it vouches for (a relay's)."""
    specs = []
    for name, fault in (("cfg-honest", None), ("cfg-cheat", CHEAT)):
        settings: dict[str, object] = {
            "key": f"{name}.pem", "listen": "127.0.0.1:0", "metrics": "127.0.0.1:0",
            "log_format": "json"}
        if fault:
            settings["fault"] = fault
        if advertise and name in advertise:
            settings["advertise"] = advertise[name]
        cluster.key(name)
        config = write_config(cluster.workdir / f"{name}.toml", "provider", **settings)
        specs.append((name, ["provider", "serve", "--config", str(config)]))
    honest, cheat = cluster.start_many(specs)
    return honest, cheat


@pytest.fixture(scope="session")
def config_providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = Cluster(tmp_path_factory.mktemp("config-providers"))
    try:
        honest, cheat = start_config_providers(cluster)
        yield {"cluster": cluster, "honest": honest, "cheat": cheat}
    finally:
        cluster.stop_all()


@contextlib.contextmanager
def relayed_providers(cluster: Cluster, before_answer: Callable[[int], None]
                      ) -> Iterator[tuple[Service, Service]]:
    """:func:`start_config_providers` behind relays (``tests.e2e.relay``): every dispute answer
    either provider gives passes ``before_answer(n)`` first, n counting from 1 over both."""
    hook = AnswerHook(before_answer)
    relays = {name: ProviderRelay(hook) for name in ("cfg-honest", "cfg-cheat")}
    try:
        services = start_config_providers(
            cluster, {name: relay.address for name, relay in relays.items()})
        for svc in services:
            relays[svc.name].forward_to(svc.address)
        yield services
    finally:
        for relay in relays.values():
            relay.close()


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
