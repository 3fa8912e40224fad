"""A provider's memory during a large state upload; prints ONE JSON line.

Setup: a provider process (``arbiter.provider_app.start_provider``) on 127.0.0.1, and this
process uploading a model-sized state (float32 tensors of 64 MiB, ``--mb`` in all) with the
client the CLI uses (``GrpcProviderPeer.put_state``, 1 MiB chunks).

Measured, per provider:
* ``mb_per_s``: MiB uploaded per second of the PutState call (acknowledged root included);
* ``peak_rss_growth_mb``: the provider process's resident memory, sampled every 10 ms during
  the upload, at its highest, minus before the upload (after a small warm-up upload), and
  ``growth_per_state_mb`` = that / the state's size (1.0: the whole state held once).

``--baseline-ref REF`` measures the same upload against the provider code of git commit
``REF`` too (exported with ``git archive`` into a temporary directory and put first on the
provider's ``PYTHONPATH``), e.g. the commit before uploads streamed to disk, which held them in
memory; without it only the current code is measured (the in-memory path is no longer
selectable) and ``baseline`` is null.

Run: ``.venv/bin/python bench/upload_bench.py [--mb 512] [--baseline-ref ad16703]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine_info

ROOT = Path(__file__).resolve().parent.parent
PROVIDER = """
import sys
from pathlib import Path
import arbiter
from arbiter.provider_app import start_provider
from proofs import SigningKey
key = Path(sys.argv[1])
SigningKey.from_seed(b"upload-bench".ljust(32, b"\\0")).save(key, overwrite=True)
running = start_provider(key, "127.0.0.1:0", max_state_bytes=int(sys.argv[2]),
                         max_stored_bytes=2 * int(sys.argv[2]))
print(running.port, arbiter.__file__, flush=True)
sys.stdin.readline()
running.close(0)
"""


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _state(mb: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    per = 64 << 20
    count, rest = divmod(mb << 20, per)
    sizes = [per] * count + ([rest] if rest else [])
    return {f"param/layer{i}.weight": torch.randn(n // 4, generator=gen)
            for i, n in enumerate(sizes)}


def measure(state: dict[str, torch.Tensor], src: Path | None) -> dict[str, Any]:
    from arbiter.provider_client import GrpcProviderPeer
    from verde.protocol.peers.state import state_to_blobs

    size = sum(t.numel() * t.element_size() for t in state.values())
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if src is not None:
        env["PYTHONPATH"] = str(src)
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen(
            [sys.executable, "-c", PROVIDER, str(Path(tmp) / "key.pem"), str(size + (1 << 20))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            cwd=tmp)
        try:
            assert child.stdout is not None and child.stdin is not None
            port, code_from = child.stdout.readline().split()
            blobs = state_to_blobs(state)
            with GrpcProviderPeer(f"127.0.0.1:{port}", transfer_timeout_s=3600) as peer:
                peer.put_state(state_to_blobs({"param/warm": torch.ones(1024)}))
                before = _rss_mb(child.pid)
                peak = [before]
                done = threading.Event()

                def sample() -> None:
                    while not done.is_set():
                        peak[0] = max(peak[0], _rss_mb(child.pid))
                        time.sleep(0.01)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                t0 = time.perf_counter()
                peer.put_state(blobs)
                took = time.perf_counter() - t0
                done.set()
                sampler.join()
            child.stdin.write("\n")
            child.stdin.flush()
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    growth = peak[0] - before
    return {"provider_code": str(Path(code_from).parent.parent),
            "mb_per_s": round(size / 2**20 / took, 1),
            "rss_before_mb": round(before, 1), "peak_rss_growth_mb": round(growth, 1),
            "growth_per_state_mb": round(growth / (size / 2**20), 3)}


def _export(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512, help="MiB of state to upload")
    parser.add_argument("--baseline-ref", default=None,
                        help="git commit whose provider code is measured too")
    args = parser.parse_args()
    state = _state(args.mb)
    current = measure(state, ROOT)
    baseline = None
    if args.baseline_ref:
        with tempfile.TemporaryDirectory() as tmp:
            baseline = measure(state, _export(args.baseline_ref, Path(tmp)))
            baseline["ref"] = args.baseline_ref
    line: dict[str, Any] = {"bench": "upload", "state_mb": args.mb, "streamed_to_disk": current,
                            "baseline": baseline}
    if baseline is not None and current["peak_rss_growth_mb"] > 0:
        line["rss_growth_baseline_over_streamed"] = round(
            baseline["peak_rss_growth_mb"] / current["peak_rss_growth_mb"], 2)
        line["speed_streamed_over_baseline"] = round(
            current["mb_per_s"] / baseline["mb_per_s"], 3)
    print(json.dumps({**line, **machine_info()}))


if __name__ == "__main__":
    main()
