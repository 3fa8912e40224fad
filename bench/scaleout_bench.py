"""Scale-out provider: step time with the partitions of a step on 1, 2 and 4 worker processes.

The job: an MLP (64 -> 512 -> 512 -> 10, ~300k parameters) on digits, batch 512, AdamW, under
repops. Timed, each the minimum over repeats of one step from the same state (bench/_timing):

* ``plain``: the job without partitions, one process (``execution.run_step``) -- the obvious
  alternative, and what a one-process provider runs today;
* ``partitions_1_worker``: the job with ``partitions = 4``, computed sequentially in one process
  (what a provider with ``--workers 1`` does, and what every dispute answer replays);
* ``workers_2`` / ``workers_4``: the same job on ``PartitionWorkers(W)`` (W worker processes,
  one numba thread each; parameters out, gradients back as safetensors frames, sum and
  optimizer step in the provider).

Every variant of the partitioned job must reach the same state digest (checked, reported as
``same_state``). Ratios are against ``plain``, measured in the same run. Worker start-up (a
second or more per process: importing torch and repops) is paid once per provider and is not
in the step times. Prints a table on stderr and ONE JSON line on stdout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_info
from _timing import best_time

PARTITIONS = 4
JOB = {"program": "mlp", "config": {"hidden": 512, "layers": 2}, "dataset": {"name": "digits"},
       "optimizer": {"name": "adamw", "lr": 0.001}, "steps": 10, "batch_size": 512, "seed": 1}


def main() -> None:
    from proofs.state import StateCommitment
    from repops import _numba
    from verde.protocol.graph.execution import run_step
    from verde.protocol.jobs.context import PARAM, JobContext
    from verde.protocol.jobs.spec import JobSpec
    from verde.protocol.provider.workers import PartitionWorkers

    _numba.set_num_threads(1)  # as each worker runs; the plain run gets the same one core
    plain = JobContext.from_spec(JobSpec.from_mapping(JOB))
    cut = JobContext.from_spec(JobSpec.from_mapping({**JOB, "partitions": PARTITIONS}))
    state = cut.initial_state()
    secs: dict[str, float] = {}
    roots: dict[str, bytes] = {}

    def timed(name: str, fn: Callable[[], dict[str, torch.Tensor]]) -> None:
        box: dict[str, dict[str, torch.Tensor]] = {}
        secs[name] = best_time(lambda: box.__setitem__("s", fn()), repeats=5)
        roots[name] = StateCommitment.from_tensors(box["s"]).root

    timed("plain", lambda: run_step(plain, state, 1))
    timed("partitions_1_worker", lambda: run_step(cut, state, 1))
    for workers in (2, 4):
        with PartitionWorkers(workers) as pool:
            pool.run_step(cut, state, 1)  # start the processes and warm their kernels
            timed(f"workers_{workers}", lambda pool=pool: pool.run_step(cut, state, 1))
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
