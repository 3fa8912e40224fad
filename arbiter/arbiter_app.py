"""Assembling an arbiter process: key, database, engine with worker threads, gRPC server,
and (with ``metrics``) a Prometheus endpoint. ``verde arbiter serve`` calls
:func:`start_arbiter` and then :func:`arbiter.lifecycle.serve_until_signalled`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from arbiter.access import AccessGuards, AccessPolicy
from arbiter.arbiter_service import ArbiterServicer
from arbiter.channels import DEFAULT_MAX_MESSAGE, TlsFiles
from arbiter.committee import CommitteeFileError, CommitteeRoster, CommitteeSeat
from arbiter.committee_client import GrpcCommitteeMember
from arbiter.dispute_admission import DEFAULT_MAX_OPEN_DISPUTES, DisputeAdmission
from arbiter.engine import ArbiterEngine, check_committee_timing
from arbiter.lifecycle import Endpoint, RunningService, open_endpoint
from arbiter.metrics import Metrics, start_metrics
from arbiter.observers import DisputeObserver
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_client import GrpcProviderPeer
from arbiter.state_log import DisputeLog
from arbiter.storage import Store, open_database
from arbiter.storage.db import SchemaPolicy
from proofs import SigningKey
from proofs.bls_keys import load_bls_key
from verde.protocol.dispute.certificate import issue_verdict_certificate

#: Calls that start new work: refused while the arbiter drains.
NEW_WORK = ("OpenDispute",)


@dataclass
class RunningArbiter(RunningService):
    endpoint: Endpoint
    engine: ArbiterEngine
    stop: threading.Event
    workers: list[threading.Thread] = field(default_factory=list)
    metrics: Metrics | None = None
    name: str = "arbiter"
    #: Who may open disputes; ``serve`` logs its line after the service announced itself.
    access: AccessGuards | None = None

    def drain(self, timeout_s: float) -> bool:
        """Refuse new disputes; every worker finishes its round, releases its dispute, stops."""
        self.endpoint.refuse_new_work()
        self.engine.drain()
        self.stop.set()
        end = time.monotonic() + timeout_s
        for w in self.workers:
            w.join(timeout=max(0.0, end - time.monotonic()))
        return not any(w.is_alive() for w in self.workers)

    def close(self, grace_s: float = 2.0) -> None:
        self.stop_serving(grace_s)
        self.engine.close()
        self.engine.store.db.close()

    def shutdown(self) -> None:
        self.drain(10.0)
        self.close(1.0)


def start_arbiter(key_path: Path, listen: str, db_url: str, *, workers: int = 4,
                  owner: str | None = None, lease_s: float = 60.0, deadline_s: float = 30.0,
                  tls: TlsFiles | None = None, max_message: int = DEFAULT_MAX_MESSAGE,
                  metrics: str | None = None, schema: SchemaPolicy = "upgrade",
                  committee: Path | None = None, bls_key: Path | None = None,
                  access: AccessPolicy | None = None,
                  max_open_disputes: int | None = DEFAULT_MAX_OPEN_DISPUTES) -> RunningArbiter:
    """Start an arbiter; ``metrics`` (HOST:PORT) serves Prometheus metrics there, ``access``
    says who may open disputes and what a dispute may cost.

    With ``committee`` (a committee file) and ``bls_key`` (this member's BLS key file) the
    arbiter sits on that committee (:mod:`arbiter.committee`): it witnesses silences and
    co-signs verdicts for the other members, and its own disputes are run by the committee.

    ``schema`` is the database policy (arbiter.storage.db): the CLI passes ``require``, so a
    database at an older revision is refused until ``verde arbiter migrate`` ran.
    """
    access = access or AccessPolicy()
    guards = access.guards("arbiter", NEW_WORK)
    key = SigningKey.load(key_path)
    seat = committee_seat(committee, bls_key, deadline_s, tls) if committee or bls_key else None
    if seat is not None:
        try:
            check_committee_timing(deadline_s, lease_s)
        except ValueError:
            seat.close()
            raise
    registry = start_metrics(metrics, "arbiter") if metrics else None
    try:
        db = open_database(db_url, schema=schema)
    except Exception:
        if registry is not None:
            registry.close()
        raise
    store = Store(db)
    observers: list[DisputeObserver] = [DisputeLog()]
    if registry is not None:
        registry.instrument_database(db.engine)
        registry.watch_store(store)
        observers.append(registry.dispute_observer())
    engine = ArbiterEngine(store, key, lambda addr: GrpcProviderPeer(addr, tls=tls),
                           owner=owner, lease_s=lease_s, deadline_s=deadline_s,
                           certify=issue_verdict_certificate, observers=observers,
                           committee=seat)

    admission = DisputeAdmission(engine, access.budget, quotas=access.quotas,
                                 max_open=max_open_disputes)

    def cleanup() -> None:
        db.close()
        if seat is not None:
            seat.close()
        if registry is not None:
            registry.close()

    endpoint = open_endpoint(
        listen, lambda s: rpc.add_ArbiterServicer_to_server(ArbiterServicer(engine, admission), s),
        new_work=NEW_WORK, observe_call=registry.observe_call if registry else None,
        tls=tls, max_message=max_message, cleanup=cleanup,
        guards=guards.interceptors)
    running = RunningArbiter(endpoint, engine, threading.Event(), metrics=registry,
                             access=guards)
    for i in range(workers):
        t = threading.Thread(target=engine.run, args=(running.stop,),
                             name=f"arbiter-worker-{i}", daemon=True)
        t.start()
        running.workers.append(t)
    return running


def committee_seat(committee: Path | None, bls_key: Path | None, deadline_s: float,
                   tls: TlsFiles | None) -> CommitteeSeat:
    """This arbiter's seat from its committee file and BLS key file (both or neither)."""
    if committee is None or bls_key is None:
        raise CommitteeFileError("--committee and --bls-key go together: a member needs the "
                                 "committee file and its own BLS key")
    return CommitteeSeat(load_bls_key(bls_key), CommitteeRoster.load(committee),
                         connect=lambda addr: GrpcProviderPeer(addr, tls=tls),
                         member_client=lambda addr, m: GrpcCommitteeMember(addr, m, tls=tls),
                         deadline_s=deadline_s)
