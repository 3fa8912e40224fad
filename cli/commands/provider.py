"""``verde provider serve``: run a compute provider's gRPC service."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from cli.config import config_option
from cli.options import (
    Address,
    Quantity,
    access_options,
    key_option,
    log_options,
    programs_option,
    service_options,
    tls_options,
    tls_pair_problems,
)
from cli.output import emit


def check_serve_settings(values: Mapping[str, Any]) -> list[str]:
    """Settings of ``serve`` that contradict each other (for --config and config check)."""
    return tls_pair_problems(dict(values))


@click.group()
def provider() -> None:
    """Run a compute provider."""


@provider.command("serve")
@config_option("provider", cross_check=check_serve_settings)
@key_option
@click.option("--listen", type=Address(), default="127.0.0.1:7001", show_default=True,
              help="host:port of the gRPC service.")
@click.option("--advertise", type=Address(), default=None,
              help="host:port this provider signs endpoint records for: the only address "
                   "where an arbiter counts its silence (default: --listen's host, bound port).")
@click.option("--endpoint-ttl", "endpoint_ttl_s", type=click.IntRange(min=60),
              default=24 * 3600, show_default=True,
              help="Seconds an endpoint record is valid (re-signed at half its lifetime).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where full checkpoints go (default: kept in memory).")
@click.option("--fault", default=None,
              help="Cheat on purpose, for demos and tests (see `verde provider faults`).")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Largest single upload a client may send (a dataset, a model's "
                   "parameters, a checkpoint).")
@click.option("--upload-store-mb", type=click.IntRange(min=1), default=4096, show_default=True,
              help="MiB of uploaded states kept on disk for jobs to start from (least "
                   "recently used evicted first); the same bound for uploaded datasets.")
@click.option("--upload-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where uploads are streamed to and kept until a job starts from them "
                   "(default: a private temporary directory removed at stop). Leftover "
                   "upload-* files there are removed at start; one provider per directory.")
@click.option("--max-stored-uploads", type=click.IntRange(min=1), default=64,
              show_default=True, help="Uploaded states kept at most.")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes computing the partitions of a job's steps (jobs with "
                   "`partitions`); the commitments are those of one process.")
@click.option("--worker-at", "worker_at", type=Address(), multiple=True,
              help="HOST:PORT of a `verde provider worker` on another machine computing "
                   "partitions too (repeat for several; beside --workers' processes).")
@click.option("--worker-secret", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The secret file shared with the --worker-at workers.")
@click.option("--generate-batch", type=click.IntRange(1, 4096), default=8, show_default=True,
              help="Prompts of a generate job decoded at once (those of one length); the "
                   "commitments do not depend on it.")
@click.option("--kv-cache/--no-kv-cache", default=True, show_default=True,
              help="Decode Hugging Face generate jobs with a key/value cache (the same bits as "
                   "recomputing every prefix, faster).")
@click.option("--max-jobs", type=click.IntRange(min=1), default=256, show_default=True,
              help="Jobs this provider keeps (with their commitments, to answer disputes); "
                   "more are refused.")
@click.option("--max-checkpoint-mb", type=Quantity(), default=64 << 10, show_default=True,
              help="Checkpoint MiB one job may keep (its state times its checkpoints).")
@access_options("--max-client-jobs", "jobs", uploads=True)
@programs_option
@service_options
@tls_options
def serve(*, key_path: Path, listen: str, advertise: str | None, endpoint_ttl_s: int,
          checkpoint_dir: Path | None, fault: str | None, max_upload_mb: int,
          upload_store_mb: int, upload_dir: Path | None, max_stored_uploads: int,
          workers: int, worker_at: tuple[str, ...], worker_secret: Path | None,
          generate_batch: int, kv_cache: bool,
          max_jobs: int, max_checkpoint_mb: int, log_format: str, log_level: str,
          metrics_address: str | None, drain_timeout_s: float, tls: object,
          access: object) -> None:
    """Serve jobs and dispute queries until SIGTERM.

    On SIGTERM the provider takes no new jobs or uploads, cancels queued jobs, lets the
    running job finish (up to --drain-timeout) while still answering dispute queries, then
    stops.
    """
    from arbiter.logs import configure_logging

    configure_logging(log_format, log_level)
    from arbiter.lifecycle import announce, serve_until_signalled
    from arbiter.provider_app import start_provider

    running = start_provider(key_path, listen, checkpoint_dir=checkpoint_dir, fault=fault,
                             tls=tls,  # type: ignore[arg-type]
                             max_state_bytes=max_upload_mb << 20,
                             max_stored_bytes=upload_store_mb << 20,
                             max_stored_uploads=max_stored_uploads, metrics=metrics_address,
                             advertise=advertise, endpoint_ttl_s=endpoint_ttl_s,
                             workers=workers, access=access,  # type: ignore[arg-type]
                             max_jobs=max_jobs, max_checkpoint_bytes=max_checkpoint_mb << 20,
                             upload_dir=upload_dir, generate_batch=generate_batch,
                             kv_cache=kv_cache, worker_at=worker_at,
                             worker_secret=worker_secret)
    announce("provider", running.host.identity.hex(), listen, running.port,
             metrics=running.metrics.address if running.metrics else None,
             fault_plan=fault, vouched_for=running.advertised)
    if running.access is not None:
        running.access.log_started()
    serve_until_signalled(running, drain_timeout_s)


@provider.command("worker")
@click.option("--listen", type=Address(), default="127.0.0.1:7100", show_default=True,
              help="host:port providers connect to.")
@click.option("--worker-secret", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="The secret file shared with the providers it serves.")
@log_options
def worker(*, listen: str, worker_secret: Path, log_format: str, log_level: str) -> None:
    """Compute the partitions of providers' steps for them, until SIGTERM.

    A provider uses it with `verde provider serve --worker-at HOST:PORT --worker-secret FILE`.
    Only a provider holding the same secret is served, and the provider accepts only this
    worker's authenticated answers: frames are authenticated, not encrypted, so run it on a
    network you would send the model over.
    """
    from arbiter.logs import configure_logging

    configure_logging(log_format, log_level)
    from arbiter.lifecycle import announce, serve_until_signalled
    from arbiter.partition_worker_host import PartitionWorkerServer, load_secret
    from verde.protocol.provider.worker_channel import secret_fingerprint

    secret = load_secret(worker_secret)
    server = PartitionWorkerServer(listen, secret)
    announce("partition worker", secret_fingerprint(secret), listen, server.port,
             identity_field="secret_id")
    serve_until_signalled(server, 0.0)


@provider.command("worker-secret")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def worker_secret_cmd(path: Path) -> None:
    """Write a new secret for a provider and its workers to PATH (readable by you only)."""
    import os

    from verde.protocol.provider.worker_channel import new_worker_secret

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists: a secret is never overwritten") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(new_worker_secret() + "\n")
    emit({"worker_secret": str(path)}, as_json=False, human=f"wrote a worker secret to {path}")


@provider.command("faults")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def faults(as_json: bool) -> None:
    """List the fault plans a provider can be started with."""
    from arbiter.provider_app import fault_names

    names = fault_names()
    emit({"faults": names}, as_json=as_json, human="\n".join(names))
