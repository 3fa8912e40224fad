"""Party identities: Ed25519 keys (RFC 8032, via ``cryptography``) and key files.

Why Ed25519: deterministic signatures (the same message always gives the same signature, so
nothing depends on a random source at signing time), small keys, fast verification, and no
parameters to get wrong.

Key files are PKCS#8 PEM, unencrypted, written with mode 0600 and never silently overwritten;
loading rejects anything that is not an Ed25519 private key with a ``KeyFileError``. Public
keys travel as 64 lowercase hex characters (the raw 32-byte key).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from proofs.canonical import hex_decode, require_bytes
from proofs.errors import InvalidSignature, KeyFileError, KeyFileExistsError, MalformedInput

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
_MAX_KEY_FILE_BYTES = 64 * 1024


class VerifyKey:
    """An Ed25519 public key. Equal and hashable by its 32 raw bytes."""

    __slots__ = ("_key", "_raw")

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self._raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> VerifyKey:
        raw = require_bytes(raw, "Ed25519 public key", PUBLIC_KEY_SIZE)
        try:
            return cls(Ed25519PublicKey.from_public_bytes(raw))
        except ValueError as exc:
            raise MalformedInput(f"Ed25519 public key: {exc}") from exc

    @classmethod
    def from_hex(cls, text: str) -> VerifyKey:
        return cls.from_bytes(hex_decode(text, "Ed25519 public key", PUBLIC_KEY_SIZE))

    def to_bytes(self) -> bytes:
        return self._raw

    def hex(self) -> str:
        return self._raw.hex()

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise ``InvalidSignature`` unless ``signature`` is this key's over ``message``."""
        signature = require_bytes(signature, "Ed25519 signature", SIGNATURE_SIZE)
        message = require_bytes(message, "signed message")
        try:
            self._key.verify(signature, message)
        except _CryptoInvalidSignature as exc:
            raise InvalidSignature(f"Ed25519 signature by {self.hex()[:16]}... is invalid") from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey({self.hex()})"


class SigningKey:
    """An Ed25519 private key. Never printed: ``repr`` shows the public key only."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        if not isinstance(key, Ed25519PrivateKey):
            raise MalformedInput(f"expected an Ed25519 private key, got {type(key).__name__}")
        self._key = key
        self._public = VerifyKey(key.public_key())

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's random source."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key with the 32-byte RFC 8032 private seed ``seed`` (tests, derived keys)."""
        return cls(Ed25519PrivateKey.from_private_bytes(require_bytes(seed, "seed", 32)))

    @property
    def public_key(self) -> VerifyKey:
        return self._public

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature over ``message`` (deterministic)."""
        return self._key.sign(require_bytes(message, "message"))

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the key as PKCS#8 PEM with mode 0600.

        Raises ``KeyFileExistsError`` if ``path`` exists and ``overwrite`` is false. With
        ``overwrite`` the file is replaced atomically (written beside it, then renamed).
        """
        write_secret_file(path, self.to_pem(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read a key written by ``save``; ``KeyFileError`` says what is wrong otherwise."""
        path = Path(path)
        data = read_secret_file(path)
        try:
            key: Any = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(key)

    def __repr__(self) -> str:
        return f"SigningKey(public={self._public.hex()})"


def read_secret_file(path: Path) -> bytes:
    """The bytes of a key file (at most 64 KiB); ``KeyFileError`` if it cannot be read."""
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path} is too large to be a key file")
    return data


def write_secret_file(path: str | os.PathLike[str], data: bytes, *,
                      overwrite: bool = False) -> None:
    """Write a secret (a key file) with mode 0600.

    Raises ``KeyFileExistsError`` if ``path`` exists and ``overwrite`` is false. With
    ``overwrite`` the file is replaced atomically (written beside it, then renamed).
    """
    path = Path(path)
    if not overwrite:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as exc:
            raise KeyFileExistsError(f"{path} exists; pass overwrite=True to replace it") from exc
        _write_private(fd, data)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        _write_private(fd, data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_private(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd`` after forcing mode 0600 (whatever the umask), then close it."""
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
