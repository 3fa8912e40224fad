"""Programs bound by their code, loaded the same way everywhere (module, file, VERDE_PROGRAMS,
entry points); a party running other code under a job's program name refuses the job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from verde.errors import VerdeInputError
from verde.protocol.jobs.code import (
    ProgramCodeError,
    ProgramVersionMismatch,
    code_version,
    source_digest,
)
from verde.protocol.jobs.loading import ProgramLoadError, load_programs
from verde.protocol.jobs.registry import ProgramConflict, get_program, register_program
from verde.protocol.jobs.spec import JobSpec

from .conftest import tiny_spec

ROOT = Path(__file__).resolve().parents[3]

PROGRAM = textwrap.dedent('''
    import torch
    from verde.protocol.jobs.programs import Program
    from verde.protocol.jobs.registry import register_program

    class UserLinear(Program):
        name = "{name}"
        defaults = {{"classes": 10}}
        {extra}

        def build(self, config, fields):
            (features,), _ = fields["x"]
            return torch.nn.Linear(features, config["classes"])

        def outputs(self, module, batch):
            return module(batch["x"]) * {scale}

        def loss(self, module, batch):
            return torch.nn.functional.cross_entropy(self.outputs(module, batch), batch["y"])

    register_program(UserLinear())
''')


def write_program(path: Path, name: str, scale: str = "1.0", extra: str = "") -> Path:
    path.write_text(PROGRAM.format(name=name, scale=scale, extra=extra))
    return path


def run_python(code: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
               ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    full["PYTHONPATH"] = os.pathsep.join([str(ROOT), full.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=300, check=False)


def test_builtin_jobs_bind_the_digest_of_their_source() -> None:
    spec = tiny_spec()
    assert spec.program_version == source_digest(get_program("mlp"))
    assert spec.program_version.startswith("sha256:")
    assert spec.identity()["program_version"] == spec.program_version
    # the same job with another code version is another job, and this process refuses it
    with pytest.raises(ProgramVersionMismatch, match=spec.program_version) as info:
        JobSpec.from_mapping({**spec.to_dict(), "program_version": "sha256:" + "0" * 64})
    assert "sha256:" + "0" * 64 in str(info.value)
    assert isinstance(info.value, VerdeInputError)


def test_a_job_made_for_the_same_code_is_accepted_with_the_same_id() -> None:
    spec = tiny_spec()
    assert JobSpec.from_mapping(spec.to_dict()).job_id == spec.job_id


def test_old_canonical_specs_without_a_program_version_are_refused() -> None:
    doc = tiny_spec().to_dict()
    doc.pop("program_version")
    with pytest.raises(VerdeInputError, match="predates code-bound jobs"):
        JobSpec.from_mapping(doc)
    doc.pop("version")  # a hand-written spec: takes this process's code
    assert JobSpec.from_mapping(doc).program_version == tiny_spec().program_version


def test_a_program_loaded_from_a_file_registers_once(tmp_path: Path) -> None:
    path = write_program(tmp_path / "progs.py", "file-linear")
    first = load_programs(str(path))
    assert [p.name for p in first] == ["file-linear"]
    assert load_programs(str(path)) == first  # loading twice is a no-op
    spec = tiny_spec(program="file-linear", config={})
    assert spec.program_version == code_version(first[0])


def test_bad_program_sources_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ProgramLoadError, match="no such file"):
        load_programs(str(tmp_path / "missing.py"))
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    with pytest.raises(ProgramLoadError, match="defines no programs"):
        load_programs(str(empty))
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ProgramLoadError, match="boom"):
        load_programs(str(broken))
    with pytest.raises(ProgramLoadError, match="No module named"):
        load_programs("no_such_module_for_verde")


def test_other_code_under_a_taken_name_is_refused(tmp_path: Path) -> None:
    load_programs(str(write_program(tmp_path / "a.py", "taken-linear")))
    with pytest.raises(ProgramLoadError, match="already registered"):
        load_programs(str(write_program(tmp_path / "b.py", "taken-linear", scale="2.0")))
    from verde.protocol.jobs.builtin import MLP

    class Impostor(MLP):
        name = "mlp"

    with pytest.raises(ProgramConflict, match=get_program("mlp").__class__.__name__ and "sha256"):
        register_program(Impostor())
    assert get_program("mlp").__class__ is MLP


def test_a_declared_version_must_name_its_sources(tmp_path: Path) -> None:
    path = write_program(tmp_path / "versioned.py", "versioned-linear",
                         extra='version = "1.0"\n    source_digest = "sha256:' + "1" * 64
                         + '"')
    with pytest.raises(ProgramLoadError, match="declared for sources"):
        load_programs(str(path))
    from verde.protocol.jobs.builtin import MLP

    class Stale(MLP):  # pinned to other sources (the edited code kept its old version)
        name = "stale-mlp"
        version = "7"
        source_digest = source_digest(get_program("gpt"))

    with pytest.raises(ProgramCodeError, match="version '7' is declared for sources"):
        register_program(Stale())


def test_a_declared_version_is_the_jobs_program_version() -> None:
    from verde.protocol.jobs.builtin import MLP

    class Pinned(MLP):
        name = "pinned-mlp-ok"
        version = "3.1"

    Pinned.source_digest = source_digest(Pinned())
    register_program(Pinned(), replace=True)
    assert tiny_spec(program="pinned-mlp-ok").program_version == "3.1"


def test_another_process_with_other_code_refuses_the_job(tmp_path: Path) -> None:
    ours = write_program(tmp_path / "ours.py", "shared-linear")
    load_programs(str(ours))
    spec = tiny_spec(program="shared-linear", config={})
    theirs = write_program(tmp_path / "theirs.py", "shared-linear", scale="2.0")
    script = ("import json, sys\n"
              "from verde.protocol.jobs.spec import JobSpec\n"
              "from verde.errors import VerdeInputError\n"
              "try:\n"
              "    print(JobSpec.from_mapping(json.loads(sys.argv[1])).job_id)\n"
              "except VerdeInputError as exc:\n"
              "    print('REFUSED', exc)\n")
    doc = json.dumps(spec.to_dict())
    other = run_python(f"import sys; sys.argv = ['x', {doc!r}]\n" + script,
                       env={"VERDE_PROGRAMS": str(theirs)})
    assert other.returncode == 0, other.stderr[-2000:]
    assert other.stdout.startswith("REFUSED"), other.stdout
    assert spec.program_version in other.stdout
    same = run_python(f"import sys; sys.argv = ['x', {doc!r}]\n" + script,
                      env={"VERDE_PROGRAMS": str(ours)})
    assert same.stdout.strip() == spec.job_id, same.stdout + same.stderr[-2000:]


def test_entry_points_of_installed_packages_are_loaded(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "ep_programs").mkdir(parents=True)
    write_program(site / "ep_programs" / "__init__.py", "entry-linear")
    dist = site / "ep_programs-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-programs\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[verde.programs]\nlinear = ep_programs\n")
    code = ("from verde.protocol.jobs.registry import get_program\n"
            "print(get_program('entry-linear').name)\n")
    found = run_python(code, env={"PYTHONPATH": str(site)})
    assert found.stdout.strip() == "entry-linear", found.stderr[-2000:]
    (dist / "entry_points.txt").write_text("[other.group]\nlinear = ep_programs\n")
    missing = run_python(code, env={"PYTHONPATH": str(site)})
    assert "unknown program 'entry-linear'" in missing.stderr
    assert "--programs" in missing.stderr
