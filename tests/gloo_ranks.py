"""Run a worker script on W gloo ranks over 127.0.0.1 and collect their JSON results.

The worker is a script (``python WORKER KIND RANK WORLD PORT OUT OPTIONS_JSON``) rather than a
function for torch.multiprocessing, which cannot pickle functions of test modules imported by
pytest's importlib mode. Test modules load this file by path.

Workers pass a barrier before ``destroy_process_group``: once in CI a rank aborted at teardown
("terminate called without an active exception", exit -6) after its peer, done first, had
torn gloo down (rank 0 also hosts the rendezvous store) while it was still finishing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_ranks(worker: Path, kind: str, world: int, tmp: Path, opts: dict,
              timeout: float = 600) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "GLOO_SOCKET_IFNAME": "lo"}
    outs = [tmp / f"{kind}-{world}-{r}.json" for r in range(world)]
    procs = [subprocess.Popen([sys.executable, str(worker), kind, str(r), str(world), str(port),
                               str(outs[r]), json.dumps(opts)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs, strict=True):
        if p.returncode != 0:
            raise AssertionError(f"a rank failed (exit {p.returncode}):\n{log[-3000:]}")
    return [json.loads(o.read_text()) for o in outs]
