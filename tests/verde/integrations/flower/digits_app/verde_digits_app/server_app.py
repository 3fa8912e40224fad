"""ServerApp: FedAvg and verde's RobustStrategy on the same federation, results to a JSON file.

mode "clean": RobustStrategy("mean") drives training and, every round, Flower's FedAvg
aggregates the very same replies; the largest difference between the two models is recorded.
mode "attacked": FedAvg, then RobustStrategy(rule, f=byzantine), each from the same start.
"""

from __future__ import annotations

import json

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from verde.integrations.flower import RobustStrategy
from verde_digits_app.task import accuracy, initial_arrays

app = ServerApp()


class _MeanBesideFedAvg(RobustStrategy):
    """RobustStrategy("mean") that also runs FedAvg's aggregation on each round's replies."""

    def __init__(self, **kw: object) -> None:
        super().__init__("mean", **kw)
        self.fedavg = FedAvg()
        self.max_difference = 0.0

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        ours, metrics = super().aggregate_train(server_round, replies)
        theirs, _ = self.fedavg.aggregate_train(server_round, replies)
        for key in ours:
            diff = np.abs(ours[key].numpy() - theirs[key].numpy()).max()
            self.max_difference = max(self.max_difference, float(diff))
        return ours, metrics


def _vector(arrays: ArrayRecord) -> list[float]:
    return np.concatenate([arrays[k].numpy().reshape(-1) for k in arrays]).tolist()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    with np.load(str(cfg["data"])) as data:
        x_test, y_test = data["x_test"], data["y_test"]
    rounds, f = int(cfg["rounds"]), int(cfg["byzantine"])
    nodes = {"fraction_evaluate": 0.0, "min_train_nodes": 10, "min_available_nodes": 10}
    out: dict[str, object] = {"mode": cfg["mode"]}

    def run(strategy: FedAvg) -> dict[str, object]:
        result = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=rounds,
                                evaluate_fn=lambda rnd, arrays: MetricRecord(
                                    {"accuracy": accuracy(arrays, x_test, y_test)}))
        last = result.evaluate_metrics_serverapp[rounds]
        entry: dict[str, object] = {"accuracy": float(last["accuracy"]),
                                    "arrays": _vector(result.arrays)}
        train = result.train_metrics_clientapp.get(rounds)
        if train is not None and "verde.excluded" in train:
            entry["excluded"] = int(train["verde.excluded"])
            entry["flagged"] = int(train["verde.excluded"]) + int(train["verde.downweighted"])
        return entry

    if cfg["mode"] == "clean":
        both = _MeanBesideFedAvg(**nodes)
        out["mean"] = run(both)
        out["max_difference_vs_fedavg"] = both.max_difference
    else:
        out["fedavg"] = run(FedAvg(**nodes))
        out["robust"] = run(RobustStrategy(str(cfg["rule"]), f=f, **nodes))
    with open(str(cfg["out"]), "w", encoding="utf-8") as fh:
        json.dump(out, fh)
