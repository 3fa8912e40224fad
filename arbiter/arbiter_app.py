"""Assembling an arbiter process: key, database, engine with worker threads, gRPC server.
The CLI's ``verde arbiter serve`` calls :func:`start_arbiter`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from arbiter.arbiter_service import ArbiterServicer
from arbiter.channels import DEFAULT_MAX_MESSAGE, TlsFiles, build_server
from arbiter.engine import ArbiterEngine
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_client import GrpcProviderPeer
from arbiter.storage import Store, open_database
from proofs import SigningKey
from verde.protocol.dispute.certificate import issue_verdict_certificate


@dataclass
class RunningArbiter:
    server: grpc.Server
    port: int
    engine: ArbiterEngine
    stop: threading.Event
    workers: list[threading.Thread] = field(default_factory=list)

    def shutdown(self) -> None:
        self.stop.set()
        self.engine.wake()
        for w in self.workers:
            w.join(timeout=10)
        self.server.stop(1).wait()
        self.engine.close()
        self.engine.store.db.close()


def start_arbiter(key_path: Path, listen: str, db_url: str, *, workers: int = 4,
                  owner: str | None = None, lease_s: float = 60.0, deadline_s: float = 30.0,
                  tls: TlsFiles | None = None, max_message: int = DEFAULT_MAX_MESSAGE
                  ) -> RunningArbiter:
    key = SigningKey.load(key_path)
    store = Store(open_database(db_url))
    engine = ArbiterEngine(store, key, lambda addr: GrpcProviderPeer(addr, tls=tls),
                           owner=owner, lease_s=lease_s, deadline_s=deadline_s,
                           certify=issue_verdict_certificate)
    server, port = build_server(
        listen, lambda s: rpc.add_ArbiterServicer_to_server(ArbiterServicer(engine), s),
        tls=tls, max_message=max_message)
    stop = threading.Event()
    running = RunningArbiter(server, port, engine, stop)
    for i in range(workers):
        t = threading.Thread(target=engine.run, args=(stop,), name=f"arbiter-worker-{i}",
                             daemon=True)
        t.start()
        running.workers.append(t)
    return running
