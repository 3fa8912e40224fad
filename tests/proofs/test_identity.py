"""Ed25519 identities: key files (mode, overwrite, corrupt files), public keys in hex."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from proofs import InvalidSignature, KeyFileError, KeyFileExistsError, SigningKey, VerifyKey
from proofs.errors import MalformedInput

# RFC 8032 section 7.1, TEST 1: secret seed, public key, signature of the empty message.
RFC8032_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_SIG = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
    "6bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_vector() -> None:
    key = SigningKey.from_seed(bytes.fromhex(RFC8032_SEED))
    assert key.public_key.hex() == RFC8032_PUBLIC
    assert key.sign(b"").hex() == RFC8032_SIG
    key.public_key.verify(bytes.fromhex(RFC8032_SIG), b"")
    with pytest.raises(InvalidSignature):
        key.public_key.verify(bytes.fromhex(RFC8032_SIG), b"x")


def test_save_load_roundtrip_with_mode_0600(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "arbiter.key"
    old = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        key.save(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = SigningKey.load(path)
    assert loaded.public_key == key.public_key
    assert loaded.sign(b"m") == key.sign(b"m")  # Ed25519 is deterministic
    assert key.public_key.hex() in repr(key) and "PRIVATE" not in repr(key)


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first, second = SigningKey.generate(), SigningKey.generate()
    first.save(path)
    with pytest.raises(KeyFileExistsError):
        second.save(path)
    assert SigningKey.load(path).public_key == first.public_key
    path.chmod(0o644)
    second.save(path, overwrite=True)
    assert SigningKey.load(path).public_key == second.public_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem"]  # no temp file left behind


def test_load_rejects_wrong_and_corrupt_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(KeyFileError, match="cannot read"):
        SigningKey.load(missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key at all")
    with pytest.raises(KeyFileError):
        SigningKey.load(garbage)
    good = SigningKey.generate().to_pem()
    truncated = tmp_path / "truncated.pem"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(KeyFileError):
        SigningKey.load(truncated)
    other = tmp_path / "ec.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="not an Ed25519"):
        SigningKey.load(other)
    with pytest.raises(KeyFileError):
        SigningKey.load(tmp_path)  # a directory


def test_public_key_hex_roundtrip_and_errors() -> None:
    pub = SigningKey.generate().public_key
    assert VerifyKey.from_hex(pub.hex()) == pub
    assert hash(VerifyKey.from_hex(pub.hex())) == hash(pub)
    for bad in ("", "zz" * 32, pub.hex()[:-2], pub.hex().upper(), pub.hex() + "00"):
        with pytest.raises(MalformedInput):
            VerifyKey.from_hex(bad)
    with pytest.raises(MalformedInput):
        pub.verify(b"\x00" * 63, b"m")
