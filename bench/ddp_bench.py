"""DDP with verde's communication hook: step time against DDP's own all-reduce.

Two ranks on loopback gloo (one process per core) train an MLP of ~1.1M parameters on a
batch of 256 per rank; a step is forward, backward (with the communication) and SGD. Timed:
the median of 30 steps after 5 warm-up steps, for DDP's default all-reduce and for the hook
with mean, median (per bucket), trimmed mean (per bucket) and centered clipping / geometric median
(whole gradient). Ratio = hook step time / all-reduce step time, measured in the same run.

Prints a table on stderr and ONE JSON line on stdout.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_info

WORLD = 2
CASES = [("allreduce", None, 0, "auto"), ("mean", "mean", 0, "bucket"),
         ("median", "median", 0, "bucket"), ("trimmed_mean", "trimmed_mean", 0, "bucket"),
         ("centered_clipping", "centered_clipping", 0, "whole"),
         ("geometric_median", "geometric_median", 0,
                                                     "whole")]


def rank_main(rank: int, port: int, out: str) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    from verde.engines.torch_distributed import robust_comm_hook, robust_state

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    torch.manual_seed(rank)
    x, y = torch.randn(256, 512), torch.randint(0, 10, (256,))
    results = {}
    for name, rule, f, mode in CASES:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(),
                              nn.Linear(512, 10))
        ddp = DDP(model)
        if rule is not None:
            ddp.register_comm_hook(robust_state(rule, f=f, mode=mode), robust_comm_hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
        times = []
        for step in range(35):
            dist.barrier()
            t = time.perf_counter()
            opt.zero_grad()
            nn.functional.cross_entropy(ddp(x), y).backward()
            opt.step()
            if step >= 5:
                times.append(time.perf_counter() - t)
        times.sort()
        results[name] = times[len(times) // 2]
    dist.barrier()  # every rank done before any tears gloo down
    dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps(results))


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = Path(tempfile.mkdtemp()) / "ddp.json"
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root, "GLOO_SOCKET_IFNAME": "lo"}
    procs = [subprocess.Popen([sys.executable, __file__, "--rank", str(r), str(port), str(out)],
                              env=env) for r in range(WORLD)]
    for p in procs:
        p.wait(timeout=900)
    if any(p.returncode for p in procs):
        raise SystemExit("a rank failed")
    secs = json.loads(out.read_text())
    base = secs["allreduce"]
    ratios = {k: round(v / base, 3) for k, v in secs.items() if k != "allreduce"}
    for k, v in secs.items():
        print(f"{k:18s} {v * 1e3:8.2f} ms/step  {v / base:5.2f}x", file=sys.stderr)
    print(json.dumps({"bench": "ddp_hook", **machine_info(), "world_size": WORLD,
                      "params": 512 * 1024 + 1024 + 1024 * 512 + 512 + 5130,
                      "step_seconds": {k: round(v, 5) for k, v in secs.items()},
                      "ratio_vs_allreduce": ratios}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--rank":
        rank_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        main()
