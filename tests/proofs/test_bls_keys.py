"""BLS key files: round trip with mode 0600, no silent overwrite, one clear error for bad files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from proofs import bls
from proofs.bls_keys import generate_bls_key, load_bls_key, save_bls_key
from proofs.errors import KeyFileError, KeyFileExistsError


def test_save_load_round_trip_with_mode_0600(tmp_path: Path) -> None:
    key = bls.keygen(b"\x07" * 32)
    path = tmp_path / "member.bls"
    save_bls_key(key, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_bls_key(path).public_key == key.public_key
    with pytest.raises(KeyFileExistsError):
        save_bls_key(key, path)
    other = bls.keygen(b"\x08" * 32)
    save_bls_key(other, path, overwrite=True)
    assert load_bls_key(path).public_key == other.public_key


def test_generated_keys_differ() -> None:
    assert generate_bls_key().public_key != generate_bls_key().public_key


@pytest.mark.parametrize("content, match", [
    (b"not json", "not JSON"),
    (b'{"format": "other"}', "format"),
    (b'{"format": "verde-bls-secret-key", "version": 2, "secret": "00"}', "exactly the fields"),
    (json.dumps({"format": "verde-bls-secret-key", "version": 1, "secret": "zz" * 32}).encode(),
     "not a valid BLS key"),
    (json.dumps({"format": "verde-bls-secret-key", "version": 1, "secret": "00" * 32}).encode(),
     "not a valid BLS key"),
])
def test_load_rejects_bad_files(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.bls"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=match):
        load_bls_key(path)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_bls_key(tmp_path / "missing.bls")
