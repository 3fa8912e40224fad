"""``verde keys``: create and show Ed25519 identity keys and BLS committee keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.output import emit
from proofs import KeyFileExistsError, SigningKey

BLS_HELP = ("A BLS key (an arbiter's committee key for `verde arbiter serve --bls-key`) "
            "instead of an Ed25519 identity.")


@click.group()
def keys() -> None:
    """Create and inspect keys: Ed25519 identities (one per provider or arbiter) and BLS
    committee keys (one per committee member)."""


@keys.command("new")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bls", is_flag=True, help=BLS_HELP)
@click.option("--force", is_flag=True, help="Replace an existing key file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def new(path: Path, bls: bool, force: bool, as_json: bool) -> None:
    """Generate a key and save it to PATH (mode 0600); print its public key (and, for a BLS
    key, its proof of possession: both go into the committee file)."""
    try:
        if bls:
            from proofs.bls_keys import generate_bls_key, save_bls_key

            bls_key = generate_bls_key()
            save_bls_key(bls_key, path, overwrite=force)
            doc = _bls_public(path, bls_key)
        else:
            key = SigningKey.generate()
            key.save(path, overwrite=force)
            doc = {"path": str(path), "public_key": key.public_key.hex()}
    except KeyFileExistsError:
        raise click.UsageError(f"{path} already exists (pass --force to replace it)") from None
    emit(doc, as_json=as_json, human=f"saved {path}\n" + _human(doc))


@keys.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bls", is_flag=True, help="PATH is a BLS committee key.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(path: Path, bls: bool, as_json: bool) -> None:
    """Print the public key of the key file at PATH (and a BLS key's proof of possession)."""
    if bls:
        from proofs.bls_keys import load_bls_key

        doc = _bls_public(path, load_bls_key(path))
        emit(doc, as_json=as_json, human=_human(doc))
        return
    pub = SigningKey.load(path).public_key.hex()
    emit({"path": str(path), "public_key": pub}, as_json=as_json, human=pub)


def _bls_public(path: Path, key: Any) -> dict[str, str]:
    from proofs import bls

    return {"path": str(path), "public_key": key.public_key.hex(),
            "pop": bls.prove_possession(key).hex()}


def _human(doc: dict[str, str]) -> str:
    text = f"public key {doc['public_key']}"
    return text + (f"\nproof of possession {doc['pop']}" if "pop" in doc else "")
