#!/usr/bin/env bash
# Regenerate arbiter/proto/*_pb2*.py from arbiter/proto/verde.proto (never edit those by hand).
# Usage: scripts/gen-proto.sh [OUT_ROOT]   (OUT_ROOT defaults to the repository root; the
# staleness test passes a temp dir and compares).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root}"
py="${PYTHON:-$root/.venv/bin/python}"
mkdir -p "$out/arbiter/proto"
cd "$root"
"$py" -m grpc_tools.protoc -I . --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  arbiter/proto/verde.proto
