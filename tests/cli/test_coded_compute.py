"""``verde coded-infer`` / ``coded-matmul``: bad settings are one input error before any
provider is contacted (the addresses below are closed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cli import exit_codes
from cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main([*argv])
    return int(info.value.code or 0), capsys.readouterr().err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    from safetensors.torch import save_file

    np.save(tmp_path / "x.npy", np.ones((6, 64), dtype=np.float32))
    save_file({"w": torch.ones(2)}, str(tmp_path / "p.safetensors"))
    return {"x": str(tmp_path / "x.npy"), "p": str(tmp_path / "p.safetensors")}


@pytest.mark.parametrize(("extra", "message"), [
    (["--config", "{not json"], "--config: not JSON"),
    (["--config", "[1]"], "--config: must be a JSON object"),
    (["--sample-shape", "1,x"], "--sample-shape: expected comma-separated ints"),
    (["--code", "sbacc"], "sbacc needs a tolerance"),
    (["--program", "nope"], "unknown program 'nope'"),
])
def test_bad_coded_inference_settings_are_one_line(
        files: dict[str, str], capsys: pytest.CaptureFixture[str], extra: list[str],
        message: str) -> None:
    argv = ["coded-infer", files["x"], "--program", "mlp", "--params", files["p"],
            "--groups", "2", "--provider", "127.0.0.1:1", "--provider", "127.0.0.1:2"]
    code, err = _run(capsys, *argv, *extra)
    assert code == exit_codes.BAD_INPUT, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_parameters_that_do_not_fit_the_program_are_one_line(
        files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "coded-infer", files["x"], "--program", "mlp", "--params",
                     files["p"], "--groups", "2", "--provider", "127.0.0.1:1", "--provider",
                     "127.0.0.1:2")
    # the parameters are checked against the program on the first share's job, before upload
    assert code == exit_codes.BAD_INPUT, err
    assert "has parameters" in err and len(err.strip().splitlines()) == 1
