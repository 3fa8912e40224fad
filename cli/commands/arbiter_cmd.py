"""``verde arbiter serve``: run an arbiter's gRPC service on a SQL database."""

from __future__ import annotations

from pathlib import Path

import click

from cli.options import tls_options


@click.group("arbiter")
def arbiter_group() -> None:
    """Run an arbiter (referee of disputes between providers)."""


@arbiter_group.command("serve")
@click.option("--key", "key_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Ed25519 key file.")
@click.option("--listen", default="127.0.0.1:7000", show_default=True, help="host:port.")
@click.option("--db", "db_url", default="sqlite:///verde-arbiter.db", show_default=True,
              help="SQLAlchemy URL: sqlite:///FILE or postgresql://USER@HOST/DB.")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Disputes driven at once by this process.")
@click.option("--owner", default=None,
              help="Lease owner id (default: from the key; give each process on a shared "
                   "database its own).")
@click.option("--lease", "lease_s", default=60.0, show_default=True, type=float,
              help="Seconds a dispute stays with this process without progress.")
@click.option("--deadline", "deadline_s", default=30.0, show_default=True, type=float,
              help="Seconds a provider has to answer one query before it forfeits.")
@tls_options
def serve(*, key_path: Path, listen: str, db_url: str, workers: int, owner: str | None,
          lease_s: float, deadline_s: float, tls: object) -> None:
    """Serve disputes until interrupted; resumes unfinished disputes from the database."""
    from arbiter.arbiter_app import start_arbiter
    from arbiter.daemon import serve_until_signalled

    running = start_arbiter(key_path, listen, db_url, workers=workers, owner=owner,
                            lease_s=lease_s, deadline_s=deadline_s, tls=tls)  # type: ignore[arg-type]
    click.echo(f"arbiter {running.engine.key.public_key.hex()[:16]} listening on "
               f"{listen.rsplit(':', 1)[0]}:{running.port} (db {db_url})", err=True)
    serve_until_signalled(running.server, on_stop=running.stop.set)
    running.shutdown()
