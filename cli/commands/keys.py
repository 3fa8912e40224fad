"""``verde keys``: create and show Ed25519 identity keys."""

from __future__ import annotations

from pathlib import Path

import click

from cli.output import emit
from proofs import KeyFileExistsError, SigningKey


@click.group()
def keys() -> None:
    """Create and inspect Ed25519 identity keys (one per provider or arbiter)."""


@keys.command("new")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing key file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def new(path: Path, force: bool, as_json: bool) -> None:
    """Generate a key and save it to PATH (mode 0600); print its public key."""
    key = SigningKey.generate()
    try:
        key.save(path, overwrite=force)
    except KeyFileExistsError:
        raise click.UsageError(f"{path} already exists (pass --force to replace it)") from None
    pub = key.public_key.hex()
    emit({"path": str(path), "public_key": pub}, as_json=as_json,
         human=f"saved {path}\npublic key {pub}")


@keys.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(path: Path, as_json: bool) -> None:
    """Print the public key of the key file at PATH."""
    pub = SigningKey.load(path).public_key.hex()
    emit({"path": str(path), "public_key": pub}, as_json=as_json, human=pub)
