"""Worst-case accuracy of every defence over every attack on scikit-learn's digits: a sweep of
rule x pre-aggregator x attack x f x heterogeneity over several seeds, with a heatmap.

n=17 workers, D-SGD with worker momentum on a logistic-regression model (verde.robust.harness).
Each cell (rule, pre-aggregator, f, heterogeneity) scores the rule by its *worst* attack: the
attack with the lowest accuracy averaged over the seeds. Heterogeneity: i.i.d. shards, and
Dirichlet(alpha) label shares (alpha 1.0 mild, 0.3 strong). Reference per (f, heterogeneity,
seed): the attack-free accuracy, i.e. the plain mean over the n-f honest workers alone.

Target: in every column, the best defence's worst case within 3 points of attack-free.

Writes bench/out/robust_accuracy.png (rows: defences, columns: heterogeneity x f, colour: the
worst-case accuracy, text: the worst attack), a table on stderr and ONE JSON line on stdout.
Default: 7 rules x 3 pre-aggregators x 7 attacks x f in {2, 4} x 3 splits x 2 seeds, 40
rounds (long on 2 cores); ``--quick``: 2 pre-aggregators, 4 attacks, f=4, 2 splits, 1 seed,
20 rounds. Runs on 2 processes (one torch and one BLAS thread each).
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per process: the work is many tiny matrix products, and on a shared
# 2-core machine multi-threaded BLAS calls stall for whole scheduler slices. Set before numpy
# is imported (here and in the worker processes, which inherit the environment).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_info
from _plots import heatmap

N = 17
OUT = Path(__file__).parent / "out"
AGGREGATORS = ["median", "trimmed_mean", "multi_krum", "geometric_median", "centered_clipping",
               "mda", "caf"]
PRE = ["none", "nnm", "bucketing"]
ATTACKS = ["sign_flipping", "ipm", "alie", "optimal_alie", "label_flipping", "mimic", "nan"]
QUICK_ATTACKS = ["sign_flipping", "alie", "label_flipping", "mimic"]
SPLITS = {"iid": ("iid", 1.0), "dir1.0": ("dirichlet", 1.0), "dir0.3": ("dirichlet", 0.3)}
Task = tuple[str, int, int, str, str, str | None, int]  # split, f, seed, rule, pre, attack, rounds


def _defence(rule: str, pre: str, f: int) -> Any:
    import verde.robust as R

    agg = R.make_aggregator(rule, f=f)
    if pre == "none":
        return agg
    stage = R.Bucketing(f=f, s=2) if pre == "bucketing" else R.make_pre_aggregator(pre, f=f)
    return R.compose(stage, agg)


def _run(task: Task) -> tuple[Task, float]:
    import torch

    torch.set_num_threads(1)
    from verde.robust.harness import SimulationConfig, load_digits_dataset, simulate

    split, f, seed, rule, pre, attack, rounds = task
    kind, alpha = SPLITS[split]
    n = N - f if attack is None else N  # attack-free: the honest workers alone
    cfg = SimulationConfig(n=n, f=0 if attack is None else f, rounds=rounds, split=kind,
                           alpha=alpha, lr=1.0, seed=seed)
    try:
        res = simulate(load_digits_dataset(), _defence(rule, pre, f), attack, cfg)
    except Exception as exc:  # a defence that crashes under an attack scores 0, and is listed
        print(f"ERROR {task}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return task, -1.0
    return task, res.accuracy


def _applicable(rule: str, pre: str, f: int) -> bool:
    import numpy as np

    try:
        d = _defence(rule, pre, f)
        d(np.ones((N, 2)), **({"reference": np.ones(2)} if d.needs_reference else {}))
        return True
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    t0 = time.perf_counter()
    rounds = args.rounds or (20 if args.quick else 40)
    seeds = list(range(args.seeds or (1 if args.quick else 2)))
    pres = PRE[:2] if args.quick else PRE
    attacks = QUICK_ATTACKS if args.quick else ATTACKS
    fs = [4] if args.quick else [2, 4]
    splits = ["iid", "dir0.3"] if args.quick else list(SPLITS)
    defences = [(r, p) for r in AGGREGATORS for p in pres]
    columns = [(s, f) for s in splits for f in fs]
    tasks: list[Task] = []
    skipped: list[str] = []
    for split, f in columns:
        for seed in seeds:
            tasks.append((split, f, seed, "mean", "none", None, rounds))
            for rule, pre in defences:
                if not _applicable(rule, pre, f):
                    skipped.append(f"{pre}+{rule} f={f}")
                    continue
                tasks.extend((split, f, seed, rule, pre, a, rounds) for a in attacks)
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = dict(pool.map(_run, tasks, chunksize=4))
    errors = sorted(str(k) for k, v in results.items() if v < 0)
    rows = [rule if pre == "none" else f"{pre}+{rule}" for rule, pre in defences]
    values: list[list[float]] = [[math.nan] * len(columns) for _ in rows]
    notes: list[list[str]] = [[""] * len(columns) for _ in rows]
    report: dict[str, Any] = {}
    ok = True
    for j, (split, f) in enumerate(columns):
        ref = sum(max(results[(split, f, s, "mean", "none", None, rounds)], 0.0)
                  for s in seeds) / len(seeds)
        cells = {}
        for i, (rule, pre) in enumerate(defences):
            per = {a: [results.get((split, f, s, rule, pre, a, rounds)) for s in seeds]
                   for a in attacks}
            if any(v is None for vs in per.values() for v in vs):
                continue
            mean_acc = {a: sum(max(v, 0.0) for v in vs) / len(vs) for a, vs in per.items()}
            worst = min(mean_acc, key=mean_acc.__getitem__)
            values[i][j], notes[i][j] = mean_acc[worst], worst
            cells[rows[i]] = {"worst": round(mean_acc[worst], 4), "worst_attack": worst}
        best = max(cells, key=lambda k: cells[k]["worst"])
        gap = 100 * (ref - cells[best]["worst"])
        ok = ok and gap <= 3.0
        report[f"{split}/f={f}"] = {"attack_free": round(ref, 4), "best_defence": best,
                                    "best_worst_case": cells[best]["worst"],
                                    "gap_points": round(gap, 2), "defences": cells}
        print(f"\n== {split}, f={f}: attack-free {ref:.4f}; best worst case {best} "
              f"{cells[best]['worst']:.4f} (gap {gap:.2f} points)", file=sys.stderr)
        for name, c in sorted(cells.items(), key=lambda kv: -kv[1]["worst"]):
            print(f"{name:30s} {c['worst']:7.4f}  {c['worst_attack']}", file=sys.stderr)
    png = OUT / "robust_accuracy.png"
    heatmap(png, rows, [f"{s} f={f}" for s, f in columns], values, notes,
            f"worst-case accuracy over {len(attacks)} attacks (n={N}, {len(seeds)} seed(s), "
            f"{rounds} rounds; text: worst attack)")
    print(json.dumps({
        "bench": "robust_accuracy", **machine_info(), "dataset": "sklearn digits",
        "model": "logistic regression", "n": N, "fs": fs, "splits": splits,
        "pre_aggregators": pres, "attacks": attacks, "seeds": len(seeds), "rounds": rounds,
        "quick": args.quick, "target": "best worst-case within 3 points of attack-free",
        "target_met": ok, "heatmap": str(png.relative_to(Path(__file__).parents[1])),
        "skipped_defences": skipped, "errors": errors,
        "seconds": round(time.perf_counter() - t0, 1),
        "results": {k: {kk: vv for kk, vv in v.items() if kk != "defences"}
                    for k, v in report.items()},
        "worst_case": {k: {d: c["worst"] for d, c in v["defences"].items()}
                       for k, v in report.items()},
        "worst_attack": {k: {d: c["worst_attack"] for d, c in v["defences"].items()}
                         for k, v in report.items()},
    }, allow_nan=False))


if __name__ == "__main__":
    main()
