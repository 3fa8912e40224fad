"""BLS key files: a committee member's secret key on disk, like its Ed25519 identity.

Why a file of its own: an arbiter that sits on a committee holds two keys, its Ed25519
identity (which signs certificates) and a BLS key (which co-signs verdicts and attests
silences, ``proofs.bls``). The BLS key is written with mode 0600 and never silently
overwritten, exactly like ``SigningKey.save``. The format is a small JSON document::

    {"format": "verde-bls-secret-key", "version": 1, "secret": "<64 hex digits>"}

the secret scalar big-endian. Public keys and proofs of possession travel as hex.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from proofs import bls
from proofs.errors import KeyFileError, MalformedInput
from proofs.identity import read_secret_file, write_secret_file

BLS_KEY_FORMAT = "verde-bls-secret-key"
BLS_KEY_VERSION = 1


def generate_bls_key() -> bls.BlsSecretKey:
    """A fresh BLS key from the operating system's random source (the draft's KeyGen)."""
    return bls.keygen(os.urandom(32))


def save_bls_key(key: bls.BlsSecretKey, path: str | os.PathLike[str], *,
                 overwrite: bool = False) -> None:
    """Write ``key`` to ``path`` (mode 0600); ``KeyFileExistsError`` if it exists."""
    if not isinstance(key, bls.BlsSecretKey):
        raise MalformedInput(f"expected a BlsSecretKey, got {type(key).__name__}")
    doc = {"format": BLS_KEY_FORMAT, "version": BLS_KEY_VERSION,
           "secret": key.scalar.to_bytes(32, "big").hex()}
    write_secret_file(path, (json.dumps(doc) + "\n").encode(), overwrite=overwrite)


def load_bls_key(path: str | os.PathLike[str]) -> bls.BlsSecretKey:
    """Read a key written by :func:`save_bls_key`; ``KeyFileError`` says what is wrong."""
    path = Path(path)
    data = read_secret_file(path)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError(f"{path} is not a BLS key file (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("format") != BLS_KEY_FORMAT:
        raise KeyFileError(f"{path} is not a BLS key file (format must be {BLS_KEY_FORMAT!r})")
    if doc.get("version") != BLS_KEY_VERSION or set(doc) != {"format", "version", "secret"}:
        raise KeyFileError(f"{path}: a BLS key file of version {BLS_KEY_VERSION} has exactly "
                           "the fields format, version, secret")
    secret = doc["secret"]
    try:
        if not isinstance(secret, str) or len(secret) != 64:
            raise ValueError("64 hex digits expected")
        return bls.BlsSecretKey(int.from_bytes(bytes.fromhex(secret), "big"))
    except (ValueError, MalformedInput) as exc:
        raise KeyFileError(f"{path}: the secret is not a valid BLS key ({exc})") from None
