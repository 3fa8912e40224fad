"""`verde keys`: real key files, one-line errors with documented exit codes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cli import exit_codes
from cli.main import main
from proofs import SigningKey


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([*argv])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_new_then_show_round_trips_the_public_key(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "provider.pem"
    code, out, _ = run(capsys, "keys", "new", str(path), "--json")
    assert code == 0
    pub = json.loads(out)["public_key"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert SigningKey.load(path).public_key.hex() == pub
    code, out, _ = run(capsys, "keys", "show", str(path))
    assert (code, out.strip()) == (0, pub)


def test_existing_key_is_not_overwritten_without_force(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "k.pem"
    run(capsys, "keys", "new", str(path))
    before = path.read_bytes()
    code, _, err = run(capsys, "keys", "new", str(path))
    assert code == exit_codes.USAGE and "--force" in err and "Traceback" not in err
    assert path.read_bytes() == before
    assert run(capsys, "keys", "new", str(path), "--force")[0] == 0
    assert path.read_bytes() != before


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_corrupt_or_missing_key_file_is_one_clear_line(tmp_path: Path, capsys, content) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content)
    code, _, err = run(capsys, "keys", "show", str(bad))
    assert code == exit_codes.BAD_INPUT
    assert err.startswith("verde: error:") and err.count("\n") == 1 and str(bad) in err
    code, _, err = run(capsys, "keys", "show", str(tmp_path / "missing.pem"))
    assert code == exit_codes.BAD_INPUT and "cannot read key file" in err


def test_bls_key_new_then_show_prints_the_committee_entry(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from proofs import bls
    from proofs.bls_keys import load_bls_key

    path = tmp_path / "member.bls"
    code, out, _ = run(capsys, "keys", "new", "--bls", str(path), "--json")
    assert code == 0
    doc = json.loads(out)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = load_bls_key(path)
    assert doc["public_key"] == key.public_key.hex()
    bls.verify_possession(bytes.fromhex(doc["public_key"]), bytes.fromhex(doc["pop"]))
    code, out, _ = run(capsys, "keys", "show", "--bls", str(path), "--json")
    assert code == 0 and json.loads(out) == doc
    code, _, err = run(capsys, "keys", "show", "--bls", str(tmp_path / "none.bls"))
    assert code == exit_codes.BAD_INPUT and err.startswith("verde: error:")
    code, _, err = run(capsys, "keys", "show", str(path))  # a BLS file is not an Ed25519 key
    assert code == exit_codes.BAD_INPUT and "Traceback" not in err
