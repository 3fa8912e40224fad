"""`verde demo` tells the whole story; `verde verify` accepts its certificate, rejects a forgery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import exit_codes
from cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([*argv])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.mark.slow
def test_demo_reaches_a_verified_verdict_against_the_cheater(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "demo", "--workdir", str(tmp_path))
    assert code == 0, err
    assert "dishonest: mallory" in out and "honest:    alice, bob" in out
    assert "certificate verified offline" in out
    certs = sorted(tmp_path.glob("verdict-*.json"))
    assert len(certs) == 1
    code, out, _ = run(capsys, "verify", str(certs[0]), "--json")
    assert code == 0 and json.loads(out)["valid"] is True
    doc = json.loads(certs[0].read_text())
    doc["body"]["verdict"]["reason"] = "fault"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    code, _, err = run(capsys, "verify", str(forged))
    assert code == exit_codes.FALSE and err.startswith("verde: error:")


def test_verify_rejects_missing_and_garbage_files(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "verify", str(tmp_path / "none.json"))
    assert code == exit_codes.USAGE and "does not exist" in err
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    code, _, err = run(capsys, "verify", str(junk))
    assert code in (exit_codes.FALSE, exit_codes.BAD_INPUT)
    assert err.startswith("verde: error:") and "Traceback" not in err
