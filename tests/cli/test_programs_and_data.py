"""``--programs`` on the commands that run or check jobs, and ``verde data``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli import exit_codes
from cli.main import main
from tests.verde.protocol.test_program_code import write_program
from verde.protocol.jobs.datasets import file_dataset_root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([*argv])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.mark.parametrize("command", [["verify"], ["delegate", "--provider", "127.0.0.1:1"],
                                     ["train-coded", "--provider", "127.0.0.1:1"]])
def test_programs_are_loaded_before_the_command_runs(tmp_path: Path, capsys, command) -> None:  # type: ignore[no-untyped-def]
    from verde.protocol.jobs.registry import get_program

    name = f"cli_{command[0].replace('-', '_')}"
    program = write_program(tmp_path / f"{name}.py", name)
    missing = tmp_path / "missing.json"
    code, _, err = run(capsys, command[0], "--programs", str(program), *command[1:],
                       str(missing))
    assert get_program(name).name == name  # loaded, whatever the command did next
    assert code != exit_codes.OK and "Traceback" not in err


def test_a_bad_programs_source_is_one_usage_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no')\n")
    code, _, err = run(capsys, "verify", "--programs", str(broken), str(tmp_path / "c.json"))
    assert code == exit_codes.USAGE
    assert "broken.py" in err and "--programs" in err and "Traceback" not in err


def test_data_root_prints_the_root_and_description(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((3, 2), dtype=np.float32), y=np.arange(3, dtype=np.int64))
    code, out, _ = run(capsys, "data", "root", str(path))
    assert code == 0 and out.strip() == file_dataset_root(path)
    code, out, _ = run(capsys, "data", "root", str(path), "--json")
    doc = json.loads(out)
    assert doc["n_samples"] == 3 and doc["fields"]["x"] == {"dtype": "float32", "shape": [2]}
    (tmp_path / "d.txt").write_text("x")
    code, _, err = run(capsys, "data", "root", str(tmp_path / "d.txt"))
    assert code == exit_codes.BAD_INPUT and "expected a .npz or .safetensors" in err
