"""Assembling a provider process: key, domain provider (honest or following a fault plan),
job host, gRPC server, and (with ``metrics``) a Prometheus endpoint. ``verde provider serve``
calls :func:`start_provider` and then :func:`arbiter.lifecycle.serve_until_signalled`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from arbiter.access import AccessGuards, AccessPolicy
from arbiter.channels import DEFAULT_MAX_MESSAGE, TlsFiles
from arbiter.errors import ArbiterInputError
from arbiter.lifecycle import Endpoint, RunningService, open_endpoint
from arbiter.logs import log_event
from arbiter.metrics import Metrics, start_metrics
from arbiter.observers import JobObserver
from arbiter.partition_worker_host import load_secret, remote_worker
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_endpoint import ProviderEndpoint
from arbiter.provider_host import DEFAULT_MAX_CHECKPOINT_BYTES, ProviderHost
from arbiter.provider_service import DEFAULT_MAX_STATE_BYTES, ProviderServicer
from arbiter.state_log import JobLog
from proofs import SigningKey
from verde.protocol.faults import ANSWER_FAULTS, COMPUTE_FAULTS, CheatingProvider, FaultPlan
from verde.protocol.graph.budget import Budget
from verde.protocol.jobs.uploaded_datasets import DEFAULT_MAX_DATASETS, uploaded_datasets
from verde.protocol.peers.endpoints import DEFAULT_ENDPOINT_TTL_S
from verde.protocol.provider.provider import DEFAULT_MAX_JOBS, Provider
from verde.protocol.provider.uploads import DEFAULT_MAX_BYTES, DEFAULT_MAX_STATES, StateStore
from verde.protocol.provider.workers import LinkOpener


def fault_names() -> list[str]:
    return [*COMPUTE_FAULTS, *ANSWER_FAULTS]


def parse_fault_plan(text: str) -> FaultPlan:
    """``corrupt_op`` or ``compute=corrupt_op,answer=refuse,step=3,node=5,seed=1,query=...``
    (``op=aten.bernoulli_.float`` picks the op ``corrupt_op`` hits by name)."""
    if "=" not in text:
        return FaultPlan(compute=text)
    fields: dict[str, object] = {"compute": None}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in ("compute", "answer", "step", "node", "seed", "query", "op"):
            raise ArbiterInputError(f"fault plan {text!r}: expected key=value pairs with keys "
                                    "compute, answer, step, node, seed, query, op")
        if name in ("step", "node", "seed"):
            try:
                fields[name] = int(value)
            except ValueError:
                raise ArbiterInputError(f"fault plan {text!r}: {name} must be an integer, "
                                        f"got {value!r}") from None
        else:
            fields[name] = value.strip()
    return FaultPlan(**fields)  # type: ignore[arg-type]


def build_provider(key: SigningKey, *, name: str = "", checkpoint_dir: Path | None = None,
                   fault: str | None = None, budget: Budget | None = None,
                   max_jobs: int = DEFAULT_MAX_JOBS, workers: int = 1,
                   remote_workers: Sequence[LinkOpener] = (),
                   uploads: StateStore | None = None, generate_batch: int = 8,
                   kv_cache: bool = True) -> Provider:
    if fault:
        return CheatingProvider(key, name=name, checkpoint_dir=checkpoint_dir, uploads=uploads,
                                plan=parse_fault_plan(fault), budget=budget, max_jobs=max_jobs,
                                workers=workers, remote_workers=remote_workers,
                                generate_batch=generate_batch, kv_cache=kv_cache)
    return Provider(key, name=name, checkpoint_dir=checkpoint_dir, uploads=uploads,
                    budget=budget, max_jobs=max_jobs, workers=workers,
                    remote_workers=remote_workers, generate_batch=generate_batch,
                    kv_cache=kv_cache)


log = logging.getLogger("verde.service")

#: Calls that start new work: refused while the provider drains, taken only from allowed
#: clients (``AccessPolicy``).
NEW_WORK = ("SubmitJob", "PutState")
#: Client-streaming calls, bounded in time and number (``arbiter.stream_guard``).
UPLOADS = ("PutState",)


@dataclass
class RunningProvider(RunningService):
    endpoint: Endpoint
    host: ProviderHost
    metrics: Metrics | None = None
    name: str = "provider"
    #: The address this provider signs endpoint records for (``verde provider serve
    #: --advertise``, or the listening host with the bound port).
    vouched: ProviderEndpoint | None = None

    @property
    def advertised(self) -> str | None:
        return self.vouched.address if self.vouched is not None else None
    #: Who may start work here; ``serve`` logs its line after the service announced itself.
    access: AccessGuards | None = None

    def drain(self, timeout_s: float) -> bool:
        """Refuse new jobs and uploads, cancel queued jobs, let the running one finish.

        Dispute answers and downloads are still served until :meth:`close`.
        """
        self.endpoint.refuse_new_work()
        return self.host.drain(timeout_s)

    def close(self, grace_s: float = 2.0) -> None:
        self.stop_serving(grace_s)
        self.host.close()
        self.host.provider.uploads.close()  # their files (and a private directory) go


def start_provider(key_path: Path, listen: str, *, checkpoint_dir: Path | None = None,
                   fault: str | None = None, tls: TlsFiles | None = None,
                   max_message: int = DEFAULT_MAX_MESSAGE,
                   max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
                   max_stored_bytes: int = DEFAULT_MAX_BYTES,
                   max_stored_uploads: int = DEFAULT_MAX_STATES,
                   metrics: str | None = None, advertise: str | None = None,
                   endpoint_ttl_s: int = DEFAULT_ENDPOINT_TTL_S,
                   workers: int = 1, access: AccessPolicy | None = None,
                   max_jobs: int = DEFAULT_MAX_JOBS,
                   max_checkpoint_bytes: int = DEFAULT_MAX_CHECKPOINT_BYTES,
                   upload_dir: Path | None = None, generate_batch: int = 8,
                   kv_cache: bool = True, worker_at: Sequence[str] = (),
                   worker_secret: Path | None = None) -> RunningProvider:
    """Start a provider's gRPC service; ``max_state_bytes`` bounds one uploaded state,
    ``max_stored_bytes`` and ``max_stored_uploads`` the uploaded states (and, in bytes,
    datasets) it keeps in ``upload_dir`` (default: a private temporary directory removed when
    the provider stops; uploads stream to disk, ``verde.protocol.provider.uploads``),
    ``access`` says who may submit and what a job may cost, ``max_jobs``
    how many jobs (with their commitments and checkpoints) it keeps, ``max_checkpoint_bytes``
    how large one job's checkpoints may be, and ``metrics`` (HOST:PORT) serves Prometheus
    metrics there. The provider vouches for ``advertise`` (default: the listening host with
    the bound port) in endpoint records valid ``endpoint_ttl_s`` seconds and renewed as they
    age; ``workers`` processes compute the partitions of jobs that set ``partitions``, and so
    do the workers at the ``worker_at`` addresses (``verde provider worker``, sharing the
    secret in ``worker_secret``; ``arbiter.partition_worker_host``); generate jobs decode up
    to ``generate_batch`` prompts at once, with a key/value cache unless ``kv_cache`` is false
    (the commitments are the same either way)."""
    for what, value in (("the upload limit", max_state_bytes),
                        ("the stored uploads' byte limit", max_stored_bytes),
                        ("the stored uploads' count limit", max_stored_uploads)):
        if value <= 0:
            raise ArbiterInputError(f"{what} must be positive, got {value}")
    remote_workers = _remote_workers(worker_at, worker_secret)
    access = access or AccessPolicy()
    guards = access.guards("provider", NEW_WORK, UPLOADS)
    key = SigningKey.load(key_path)
    vouched = ProviderEndpoint(key, advertise, ttl_s=endpoint_ttl_s)
    uploaded_datasets().configure(min(max_stored_uploads, DEFAULT_MAX_DATASETS),
                                  max_stored_bytes)
    provider = build_provider(key, checkpoint_dir=checkpoint_dir, fault=fault,
                              budget=access.budget, max_jobs=max_jobs, workers=workers,
                              remote_workers=remote_workers,
                              generate_batch=generate_batch, kv_cache=kv_cache,
                              uploads=StateStore(max_stored_uploads, max_stored_bytes,
                                                 directory=upload_dir))
    registry = start_metrics(metrics, "provider") if metrics else None
    observers: list[JobObserver] = [JobLog()]
    if registry is not None:
        observers.append(registry.job_observer())
    host = ProviderHost(provider, observers, quotas=access.quotas,
                        max_checkpoint_bytes=max_checkpoint_bytes)

    def cleanup() -> None:
        host.close()
        provider.close()
        if registry is not None:
            registry.close()

    endpoint = open_endpoint(
        listen, lambda s: rpc.add_ProviderServicer_to_server(
            ProviderServicer(host, max_state_bytes=max_state_bytes, endpoint=vouched), s),
        new_work=NEW_WORK, observe_call=registry.observe_call if registry else None,
        tls=tls, max_message=max_message, cleanup=cleanup,
        guards=guards.interceptors)
    if advertise is None:
        listen_host = listen.rsplit(":", 1)[0]
        vouched.advertise(f"{listen_host}:{endpoint.port}")
        if listen_host in ("0.0.0.0", "[::]"):
            log_event(log, logging.WARNING, "provider.advertise",
                      f"vouching for {vouched.address}, which arbiters on other machines "
                      "cannot dial: pass --advertise HOST:PORT", address=vouched.address)
    return RunningProvider(endpoint, host, registry, vouched=vouched, access=guards)


def _remote_workers(addresses: Sequence[str], secret_path: Path | None) -> list[LinkOpener]:
    """Openers of the links to the workers at ``addresses``, or one clear error."""
    if not addresses:
        return []
    if secret_path is None:
        raise ArbiterInputError("--worker-at needs --worker-secret: the file the workers "
                                "were started with")
    secret = load_secret(secret_path)
    return [remote_worker(address, secret) for address in addresses]
