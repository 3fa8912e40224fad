"""The generated protobuf code is exactly what scripts/gen-proto.sh makes from verde.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("verde_pb2.py", "verde_pb2.pyi", "verde_pb2_grpc.py")


def _generate(out: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "gen-proto.sh"), str(out)], check=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, timeout=120)


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    _generate(tmp_path)
    for name in GENERATED:
        fresh = (tmp_path / "arbiter" / "proto" / name).read_bytes()
        committed = (ROOT / "arbiter" / "proto" / name).read_bytes()
        assert fresh == committed, f"arbiter/proto/{name} is stale: run scripts/gen-proto.sh"


def test_a_changed_proto_is_detected(tmp_path: Path) -> None:
    """Negative control: editing the .proto changes the generated code the test compares."""
    copy = tmp_path / "repo"
    (copy / "arbiter" / "proto").mkdir(parents=True)
    (copy / "scripts").mkdir()
    (copy / "scripts" / "gen-proto.sh").write_bytes((ROOT / "scripts/gen-proto.sh").read_bytes())
    proto = (ROOT / "arbiter/proto/verde.proto").read_text()
    (copy / "arbiter/proto/verde.proto").write_text(
        proto.replace("message Empty {}", "message Empty { string x = 1; }"))
    subprocess.run(["bash", str(copy / "scripts/gen-proto.sh"), str(tmp_path / "out")],
                   check=True, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
                   timeout=120)
    changed = (tmp_path / "out/arbiter/proto/verde_pb2.py").read_bytes()
    assert changed != (ROOT / "arbiter/proto/verde_pb2.py").read_bytes()
