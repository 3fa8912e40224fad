"""``verde provider serve``: run a compute provider's gRPC service."""

from __future__ import annotations

from pathlib import Path

import click

from cli.options import tls_options
from cli.output import emit


@click.group()
def provider() -> None:
    """Run a compute provider."""


@provider.command("serve")
@click.option("--key", "key_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Ed25519 key file.")
@click.option("--listen", default="127.0.0.1:7001", show_default=True, help="host:port.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where full checkpoints go (default: kept in memory).")
@click.option("--fault", default=None,
              help="Cheat on purpose, for demos and tests (see `verde provider faults`).")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=256, show_default=True,
              help="Largest state a client may upload (jobs started from a checkpoint).")
@tls_options
def serve(*, key_path: Path, listen: str, checkpoint_dir: Path | None, fault: str | None,
          max_upload_mb: int, tls: object) -> None:
    """Serve jobs and dispute queries until interrupted."""
    from arbiter.daemon import serve_until_signalled
    from arbiter.provider_app import start_provider

    server, port, host = start_provider(key_path, listen, checkpoint_dir=checkpoint_dir,
                                        fault=fault, tls=tls,  # type: ignore[arg-type]
                                        max_state_bytes=max_upload_mb << 20)
    click.echo(f"provider {host.identity.hex()[:16]} listening on {listen.rsplit(':', 1)[0]}:"
               f"{port}" + (f" (fault plan: {fault})" if fault else ""), err=True)
    serve_until_signalled(server, on_stop=host.close)


@provider.command("faults")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def faults(as_json: bool) -> None:
    """List the fault plans a provider can be started with."""
    from arbiter.provider_app import fault_names

    names = fault_names()
    emit({"faults": names}, as_json=as_json, human="\n".join(names))
