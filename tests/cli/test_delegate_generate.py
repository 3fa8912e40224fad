"""``verde delegate --tokenizer``: a directory without a tokenizer is one input error before any
provider is contacted (not after the whole job ran)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cli import exit_codes
from cli.main import main
from tests.verde.protocol.generate_jobs import GREEDY, generate_doc


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main([*argv])
    return int(info.value.code or 0), capsys.readouterr().err


def _job(tmp_path: Path) -> Path:
    import json

    path = tmp_path / "gen.json"
    path.write_text(json.dumps(generate_doc(tmp_path, "gpt2", GREEDY)))
    return path


def test_a_directory_without_a_tokenizer_is_refused_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "no-tokenizer"
    empty.mkdir()
    started = time.monotonic()
    # the provider address is closed: had delegation started, this would fail on it instead
    code, err = _run(capsys, "delegate", str(_job(tmp_path)), "--provider", "127.0.0.1:1",
                     "--tokenizer", str(empty))
    assert code == exit_codes.BAD_INPUT, err
    assert f"model directory {empty}: no tokenizer there" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - started < 60


def test_without_a_tokenizer_option_delegation_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "delegate", str(_job(tmp_path)), "--provider", "127.0.0.1:1")
    assert code != exit_codes.OK
    assert "tokenizer" not in err and "127.0.0.1:1" in err  # it got as far as the provider
