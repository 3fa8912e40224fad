"""Flower: RobustStrategy's aggregation step per round against Flower's own FedAvg.

Both aggregate the same reply messages (n clients, a model of ~100k float32 parameters in
four arrays, as a small CNN has): FedAvg averages the weights; RobustStrategy unpacks the
replies into update vectors, runs the rule, writes the new ArrayRecord and computes its report
(effective weights). Timed is ``aggregate_train`` (best of several rounds, one thread), which
is all the server does per round besides sending; the clients' training is the same for both.

Target: ratio <= 1.5 for the coordinate-wise rules (mean, median, trimmed mean, MeaMed).
Prints a table on stderr and ONE JSON line on stdout.
"""

from __future__ import annotations

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_info
from _timing import best_time

SHAPES = {"conv1": (32, 1, 3, 3), "conv2": (64, 32, 3, 3), "fc": (10, 8_000), "bias": (10,)}
COORDINATEWISE = ("mean", "median", "trimmed_mean", "meamed")
OTHERS = ("multi_krum", "geometric_median", "centered_clipping")


def _replies(n: int, seed: int = 0) -> tuple[object, list[object]]:
    from flwr.app import Array, ArrayRecord, Message, MessageType, MetricRecord, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0  # as a server
    rng = np.random.default_rng(seed)
    base = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    glob = ArrayRecord({k: Array(v) for k, v in base.items()})
    replies = []
    for i in range(n):
        arrays = ArrayRecord({k: Array(v + 0.01 * rng.normal(size=v.shape).astype(np.float32))
                              for k, v in base.items()})
        request = Message(RecordDict({"arrays": glob}), dst_node_id=1000 + i,
                          message_type=MessageType.TRAIN)
        replies.append(Message(RecordDict({"arrays": arrays, "metrics": MetricRecord(
            {"num-examples": int(rng.integers(50, 500))})}), reply_to=request))
    return glob, replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch
    from flwr.serverapp.strategy import FedAvg

    from verde.engines.flower import RobustStrategy

    torch.set_num_threads(1)
    out: dict[str, object] = {"bench": "flower_strategy", **machine_info(),
                              "params": int(sum(np.prod(s) for s in SHAPES.values()))}
    ratios: dict[str, dict[str, float]] = {}
    seconds: dict[str, dict[str, float]] = {}
    for n in (10, 100):
        glob, replies = _replies(n)
        fedavg = best_time(lambda r=replies: FedAvg().aggregate_train(1, r), args.repeats)
        row, secs = {}, {"fedavg": round(fedavg, 5)}
        for rule in COORDINATEWISE + OTHERS:
            strategy = RobustStrategy(rule, f=n // 5 if rule != "mean" else 0)

            def step(s=strategy, g=glob, r=replies) -> None:
                s.expect_updates_of(g)
                s.aggregate_train(1, r)

            t = best_time(step, args.repeats)
            row[rule], secs[rule] = round(t / fedavg, 3), round(t, 5)
            print(f"n={n:4d} {rule:18s} {t * 1e3:9.2f} ms  {t / fedavg:6.2f}x FedAvg "
                  f"({fedavg * 1e3:.2f} ms)", file=sys.stderr)
        ratios[f"n{n}"], seconds[f"n{n}"] = row, secs
    out["ratio_vs_fedavg"] = ratios
    out["seconds"] = seconds
    out["target_coordinatewise_le_1.5"] = all(ratios[k][r] <= 1.5 for k in ratios
                                              for r in COORDINATEWISE)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
