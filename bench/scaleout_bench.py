"""Scale-out provider: step time with the partitions of a step on 1, 2 and 4 worker processes.

The job: an MLP (64 -> 512 -> 512 -> 10, ~300k parameters) on digits, batch 2048, AdamW, under
repops. Timed: one step from the same state, the minimum over 9 round-robin rounds (so a load
spike on a shared machine hits every variant alike), after one untimed warm-up step each:

* ``plain``: the job without partitions, one process with one thread
  (``execution.run_step``) -- the obvious alternative, what a one-process provider runs today;
* ``partitions_1_worker``: the job with ``partitions = 4``, computed sequentially in one process
  (what a provider with ``--workers 1`` does, and what every dispute answer replays);
* ``one_worker_process``: all four partitions on one worker process (a provider never does
  this; minus ``partitions_1_worker`` it is the cost of the frames and process hops);
* ``workers_2`` / ``workers_4``: the same job on ``PartitionWorkers(W)`` (W worker processes,
  one numba thread each; parameters out, gradients back as safetensors frames, sum and
  optimizer step in the provider);
* ``remote_2``: two ``verde provider worker`` processes reached over TCP on 127.0.0.1, as
  workers on other machines are (the same frames, HMAC-authenticated both ways); minus
  ``workers_2`` it is the cost of the sockets and the authentication, not of a real network.

Every variant of the partitioned job must reach the same state digest (checked, reported as
``same_state``). Ratios are against ``plain``, measured in the same run. Worker start-up (a
second or more per process: importing torch and repops) is paid once per provider and is not
in the step times. Prints a table on stderr and ONE JSON line on stdout.
"""

from __future__ import annotations

import os

# One thread per process, as each worker runs: on a shared 2-core machine a second (OpenMP or
# numba) thread per process only contends, and the comparison is per core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_info

PARTITIONS = 4
ROUNDS = 9
JOB = {"program": "mlp", "config": {"hidden": 512, "layers": 2}, "dataset": {"name": "digits"},
       "optimizer": {"name": "adamw", "lr": 0.001}, "steps": 10, "batch_size": 2048, "seed": 1}


@contextmanager
def remote_workers(count: int) -> Iterator[tuple[list[str], bytes]]:
    """``count`` ``verde provider worker`` processes on 127.0.0.1: (addresses, secret)."""
    from verde.protocol.provider.worker_channel import load_worker_secret, new_worker_secret

    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        secret_file = Path(tmp) / "worker.secret"
        secret_file.write_text(new_worker_secret())
        try:
            addresses = []
            for _ in range(count):
                proc = subprocess.Popen(
                    [sys.executable, "-c", "from cli.entry import main; main()", "provider",
                     "worker", "--listen", "127.0.0.1:0", "--worker-secret", str(secret_file)],
                    stderr=subprocess.PIPE, text=True, env={**os.environ})
                procs.append(proc)
                for line in proc.stderr or ():
                    if match := re.search(r"listening on (127\.0\.0\.1:\d+)", line):
                        addresses.append(match.group(1))
                        break
                else:
                    raise RuntimeError("a verde provider worker did not start")
            yield addresses, load_worker_secret(secret_file)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)


def main() -> None:
    from arbiter.partition_worker_host import remote_worker
    from proofs.state import StateCommitment
    from repops import _numba
    from verde.protocol.graph.execution import run_step
    from verde.protocol.jobs.context import PARAM, JobContext
    from verde.protocol.jobs.spec import JobSpec
    from verde.protocol.provider.workers import PartitionWorkers

    _numba.set_num_threads(1)  # as each worker runs
    plain = JobContext.from_spec(JobSpec.from_mapping(JOB))
    cut = JobContext.from_spec(JobSpec.from_mapping({**JOB, "partitions": PARTITIONS}))
    state = cut.initial_state()
    with PartitionWorkers(1) as one, PartitionWorkers(2) as two, PartitionWorkers(4) as four, \
            remote_workers(2) as (addresses, secret), \
            PartitionWorkers(0, [remote_worker(a, secret) for a in addresses]) as remote:
        variants: dict[str, Callable[[], dict[str, torch.Tensor]]] = {
            "plain": lambda: run_step(plain, state, 1),
            "partitions_1_worker": lambda: run_step(cut, state, 1),
            "one_worker_process": lambda: one.run_step(cut, state, 1),
            "workers_2": lambda: two.run_step(cut, state, 1),
            "workers_4": lambda: four.run_step(cut, state, 1),
            "remote_2": lambda: remote.run_step(cut, state, 1),
        }
        roots = {k: StateCommitment.from_tensors(fn()).root for k, fn in variants.items()}
        secs = dict.fromkeys(variants, float("inf"))
        for _ in range(ROUNDS):  # round robin: a load spike on the shared machine hits all
            for k, fn in variants.items():
                t = time.perf_counter()
                fn()
                secs[k] = min(secs[k], time.perf_counter() - t)
    partitioned = [r for k, r in roots.items() if k != "plain"]
    base = secs["plain"]
    for k, v in secs.items():
        print(f"{k:22s} {v * 1e3:9.1f} ms/step  {v / base:5.2f}x plain", file=sys.stderr)
    n_params = sum(t.numel() for k, t in state.items() if k.startswith(PARAM))
    print(json.dumps({
        "bench": "scaleout_provider", **machine_info(), "params": n_params,
        "batch_size": JOB["batch_size"], "partitions": PARTITIONS,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "step_seconds": {k: round(v, 4) for k, v in secs.items()},
        "ratio_vs_plain": {k: round(v / base, 3) for k, v in secs.items() if k != "plain"},
        "same_state": len(set(partitioned)) == 1,
    }))


if __name__ == "__main__":
    main()
