"""A Flower App for the simulation test: logistic regression on digits over 10 clients.

Run as a script (``python flower_digits_app.py DATA OUT MODE BYZANTINE``) it runs Flower's
simulation engine (``flwr.simulation.run_simulation``: the ServerApp in this process, the
ClientApps in Ray actors on 127.0.0.1) and writes the results as JSON:

- mode "clean": RobustStrategy("mean") drives training and, every round, Flower's FedAvg
  aggregates the very same replies; the largest difference between the two models is kept.
- mode "attacked": FedAvg, then RobustStrategy("multi_krum", f=BYZANTINE), each from the same
  start, while the last BYZANTINE clients attack through ``attack_mod("ipm", eps=4)``.

The model is numpy only: the local step is full-batch gradient descent, deterministic.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from verde.engines.flower import RobustStrategy, attack_mod

CLASSES, FEATURES, CLIENTS, ROUNDS = 10, 64, 10, 3


def initial_arrays() -> ArrayRecord:
    return ArrayRecord({"w": Array(np.zeros((CLASSES, FEATURES), np.float32)),
                        "b": Array(np.zeros(CLASSES, np.float32))})


def train(arrays: ArrayRecord, x: np.ndarray, y: np.ndarray, epochs: int = 20,
          lr: float = 0.5) -> ArrayRecord:
    w, b = arrays["w"].numpy().copy(), arrays["b"].numpy().copy()
    onehot = np.eye(CLASSES, dtype=np.float32)[y]
    for _ in range(epochs):
        z = x @ w.T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(y)
        w -= lr * (g.T @ x)
        b -= lr * g.sum(axis=0)
    return ArrayRecord({"w": Array(w), "b": Array(b)})


def accuracy(arrays: ArrayRecord, x: np.ndarray, y: np.ndarray) -> float:
    w, b = arrays["w"].numpy(), arrays["b"].numpy()
    with np.errstate(all="ignore"):
        return float(((x @ w.T + b).argmax(axis=1) == y).mean())


def client_app(data: str, byzantine: int) -> ClientApp:
    """Honest local training; the last ``byzantine`` partitions attack through the mod."""

    def is_byzantine(context: Context) -> bool:
        return int(context.node_config["partition-id"]) >= CLIENTS - byzantine

    app = ClientApp(mods=[attack_mod("ipm", eps=4.0, byzantine=is_byzantine)])

    @app.train()
    def local_train(msg: Message, context: Context) -> Message:
        part = int(context.node_config["partition-id"])
        with np.load(data) as d:
            x, y = d[f"x{part}"], d[f"y{part}"]
        return Message(RecordDict({"arrays": train(msg.content["arrays"], x, y),
                                   "metrics": MetricRecord({"num-examples": len(y)})}),
                       reply_to=msg)

    return app


class MeanBesideFedAvg(RobustStrategy):
    """RobustStrategy("mean") that also runs FedAvg's aggregation on each round's replies."""

    def __init__(self, **kw: object) -> None:
        super().__init__("mean", **kw)
        self.max_difference = 0.0

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        ours, metrics = super().aggregate_train(server_round, replies)
        theirs, _ = FedAvg().aggregate_train(server_round, replies)
        for key in ours:
            diff = np.abs(ours[key].numpy() - theirs[key].numpy()).max()
            self.max_difference = max(self.max_difference, float(diff))
        return ours, metrics


def server_app(data: str, out: str, mode: str, byzantine: int) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        with np.load(data) as d:
            x_test, y_test = d["x_test"], d["y_test"]
        nodes = {"fraction_evaluate": 0.0, "min_train_nodes": CLIENTS,
                 "min_available_nodes": CLIENTS}
        result: dict[str, object] = {"mode": mode}

        def run(strategy: FedAvg) -> dict[str, object]:
            res = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=ROUNDS,
                                 evaluate_fn=lambda rnd, arrays: MetricRecord(
                                     {"accuracy": accuracy(arrays, x_test, y_test)}))
            entry: dict[str, object] = {
                "accuracy": float(res.evaluate_metrics_serverapp[ROUNDS]["accuracy"])}
            metrics = res.train_metrics_clientapp.get(ROUNDS)
            if metrics is not None and "verde.excluded" in metrics:
                entry["excluded"] = int(metrics["verde.excluded"])
            return entry

        if mode == "clean":
            both = MeanBesideFedAvg(**nodes)
            result["mean"] = run(both)
            result["max_difference_vs_fedavg"] = both.max_difference
        else:
            result["fedavg"] = run(FedAvg(**nodes))
            result["robust"] = run(RobustStrategy("multi_krum", f=byzantine, **nodes))
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(result, fh)

    return app


def main() -> None:
    from flwr.simulation import run_simulation

    data, out, mode, byzantine = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    run_simulation(server_app=server_app(data, out, mode, byzantine),
                   client_app=client_app(data, byzantine), num_supernodes=CLIENTS,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": os.cpu_count() or 1,
                                                 "_node_ip_address": "127.0.0.1",
                                                 "include_dashboard": False,
                                                 "logging_level": "ERROR"}})


if __name__ == "__main__":
    main()
