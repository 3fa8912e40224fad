"""An in-process cluster for the service tests: two providers (one cheating) and an arbiter,
all real gRPC servers on 127.0.0.1 with Prometheus endpoints, one arbiter worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arbiter.arbiter_app import RunningArbiter, start_arbiter
from arbiter.arbiter_client import ArbiterClient
from arbiter.provider_app import start_provider
from arbiter.provider_client import GrpcProviderPeer
from proofs import SigningKey

SPEC = {"program": "mlp", "dataset": {"name": "digits"}, "optimizer": {"name": "sgd", "lr": 0.1},
        "steps": 6, "batch_size": 8, "seed": 3, "checkpoint_interval": 2}
CHEAT = "compute=corrupt_op,step=4"


def key_file(tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.pem"
    SigningKey.from_seed(name.encode().ljust(32, b"\0")).save(path, overwrite=True)
    return path


def signed_results(addrs: dict[str, str], spec: dict[str, Any] = SPEC) -> dict[str, str]:
    """Each provider's signed result for ``spec`` (run if needed), as JSON text."""
    out = {}
    for name, addr in addrs.items():
        peer = GrpcProviderPeer(addr)
        try:
            job = peer.submit(spec)
            peer.wait(job, timeout_s=300)
            out[name] = json.dumps(peer.result(job).to_json(), sort_keys=True)
        finally:
            peer.close()
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("cluster")
    providers = {}
    for name, fault in (("honest", None), ("cheat", CHEAT)):
        providers[name] = start_provider(key_file(tmp, name), "127.0.0.1:0", fault=fault,
                                         metrics="127.0.0.1:0")
    arb: RunningArbiter = start_arbiter(key_file(tmp, "arbiter"), "127.0.0.1:0",
                                        f"sqlite:///{tmp / 'arbiter.db'}", workers=1,
                                        metrics="127.0.0.1:0")
    client = ArbiterClient(f"127.0.0.1:{arb.port}")
    try:
        yield {"addrs": {n: f"127.0.0.1:{p.port}" for n, p in providers.items()},
               "providers": providers, "client": client, "arbiter": arb, "tmp": tmp}
    finally:
        client.close()
        arb.shutdown()
        for running in providers.values():
            running.close(0)
