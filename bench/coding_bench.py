"""Gradient-coding benchmark: simulated step time per scheme and delay model, real decode cost.

Prints one JSON line (stdout) and a table (stderr):
* per delay model, each scheme's mean step time as a ratio to uncoded wait-for-all, on the same
  sampled delays (n=20 workers, s=4; sequential schemes use replication 2 and delay budget 2);
  target <= 0.6 for fractional/cyclic with 20% heavy-tailed stragglers;
* each scheme's worker load (fraction of the data a worker computes);
* decode time as a fraction of one worker's step time, measured on real gradients of a small
  CNN on scikit-learn's digits (target < 1%).

Run: .venv/bin/python bench/coding_bench.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from verde.coding import (
    Bursty,
    CyclicRepetitionCode,
    FractionalRepetitionCode,
    HeavyTailed,
    ShiftedExponential,
)
from verde.coding.simulate import compare

N_WORKERS, STRAGGLERS = 20, 4


def _median_time(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def decode_cost() -> dict[str, float]:
    """Decode time vs one worker's gradient time (its (s+1)/n share of a 1024-sample batch)."""
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64 * 64, 10))
    share = 1024 * (STRAGGLERS + 1) // N_WORKERS
    xb, yb = x[:share], y[:share]

    def worker_step() -> None:
        model.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()

    worker_step()
    step_s = _median_time(worker_step)
    d = sum(p.numel() for p in model.parameters())
    rng = np.random.default_rng(0)
    fr = FractionalRepetitionCode(N_WORKERS, STRAGGLERS)
    grads_fr = {p: torch.from_numpy(rng.standard_normal(d).astype(np.float32))
                for p in range(fr.n_partitions)}
    answers_fr = {w: fr.encode(w, grads_fr) for w in range(STRAGGLERS, N_WORKERS)}
    fr_s = _median_time(lambda: fr.decode(answers_fr))
    cy = CyclicRepetitionCode(N_WORKERS, STRAGGLERS, seed=0, max_condition=1e6)
    grads_cy = {p: torch.from_numpy(rng.standard_normal(d).astype(np.float32))
                for p in range(N_WORKERS)}
    answers_cy = {w: cy.encode(w, grads_cy) for w in range(STRAGGLERS, N_WORKERS)}
    cy.decode(answers_cy)  # first decode of a pattern solves its system; later ones reuse it
    cy_s = _median_time(lambda: cy.decode(answers_cy))
    return {"params": d, "worker_step_s": step_s, "fractional_decode_s": fr_s,
            "cyclic_decode_s": cy_s, "fractional_decode_fraction": fr_s / step_s,
            "cyclic_decode_fraction": cy_s / step_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    models = [ShiftedExponential(0.2), HeavyTailed(fraction=0.2), Bursty()]
    result: dict[str, object] = {"bench": "coding", "workers": N_WORKERS,
                                 "stragglers": STRAGGLERS, "rounds": args.rounds}
    ratios: dict[str, dict[str, float]] = {}
    loads: dict[str, dict[str, float]] = {}
    for model in models:
        timings = compare(model.sample(args.rounds, N_WORKERS, rng), STRAGGLERS)
        base = timings["wait-for-all"].mean_step_time
        ratios[model.name] = {k: round(v.mean_step_time / base, 4) for k, v in timings.items()}
        loads[model.name] = {k: round(v.mean_load, 4) for k, v in timings.items()}
    result["step_time_ratio_vs_wait_for_all"] = ratios
    result["worker_load"] = loads
    result["decode"] = {k: (round(v, 6) if isinstance(v, float) else v)
                        for k, v in decode_cost().items()}
    hv = ratios["heavy-tailed"]
    result["target_heavy_tailed_fractional_le_0.6"] = hv["fractional"] <= 0.6
    result["target_decode_fraction_lt_0.01"] = result["decode"]["fractional_decode_fraction"] < 0.01
    for name, row in ratios.items():
        print(f"{name:22s} " + "  ".join(f"{k}={v:.3f}" for k, v in row.items()), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
