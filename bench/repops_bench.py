"""Benchmark repops' PyTorch integration against plain torch (eager, same thread count).

Prints ONE JSON line on stdout (a table on stderr):
- matmul_ratio: fp32 1024x1024x1024 throughput, repops (torch.mm inside reproducible()) /
  torch.matmul (target >= 0.5);
- gpt_step_ratio: time of one training step (forward, backward, AdamW) of a GPT with 4 layers,
  width 256, sequence 128, batch 16: repops (mode + repops AdamW + clipping) / torch eager
  (torch.optim.AdamW, foreach default) (target <= 3, goal 1.3);
- softmax_ratio, layer_norm_ratio: throughput on large rows, repops / torch;
- dispatch_overhead_us: the mode's cost per op (a 1-element exact op inside vs outside);
- gpt_ops_per_step and a per-route time split of one repops GPT step.
Every timing is the median of several runs after a warm-up (numba compiles on first use).
Usage: python bench/repops_bench.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import repops
from repops import _numba
from repops.dispatch import mode as mode_module
from repops.optim import AdamW, clip_grad_norm_
from tests.repops.models import TinyGPT, gpt_loss


def median_time(fn: Callable[[], object], runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def in_mode(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with repops.reproducible():
            return fn()

    return run


def bench_matmul(runs: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
    t_torch = median_time(lambda: torch.matmul(a, b), runs)
    t_repops = median_time(in_mode(lambda: torch.mm(a, b)), runs)
    flop = 2 * 1024**3
    return {
        "matmul_torch_gflops": flop / t_torch / 1e9,
        "matmul_repops_gflops": flop / t_repops / 1e9,
        "matmul_ratio": t_torch / t_repops,
    }


def bench_rows(runs: int, rows: int, cols: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(rows, cols, generator=g)
    w, bias = torch.randn(cols, generator=g), torch.randn(cols, generator=g)
    out = {}
    for name, fn in (
        ("softmax", lambda: torch.softmax(x, dim=-1)),
        ("layer_norm", lambda: F.layer_norm(x, (cols,), w, bias)),
    ):
        t_torch = median_time(fn, runs)
        t_repops = median_time(in_mode(fn), runs)
        out[f"{name}_ratio"] = t_torch / t_repops
        out[f"{name}_torch_ms"] = t_torch * 1e3
        out[f"{name}_repops_ms"] = t_repops * 1e3
    return out


def _gpt_setup(layers: int, width: int, seq: int, batch: int) -> tuple[TinyGPT, torch.Tensor]:
    torch.manual_seed(0)
    model = TinyGPT(vocab=512, width=width, heads=max(1, width // 64), layers=layers, seq=seq)
    idx = torch.randint(0, 512, (batch, seq + 1), generator=torch.Generator().manual_seed(2))
    return model, idx


def bench_gpt(runs: int, layers: int, width: int, seq: int, batch: int) -> dict[str, float]:
    model, idx = _gpt_setup(layers, width, seq, batch)
    torch_opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def torch_step() -> None:
        torch_opt.zero_grad()
        gpt_loss(model, idx).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        torch_opt.step()

    model_r, _ = _gpt_setup(layers, width, seq, batch)
    opt = AdamW(model_r.parameters(), lr=1e-4)

    def repops_step() -> None:
        opt.zero_grad()
        with repops.reproducible():
            gpt_loss(model_r, idx).backward()
            clip_grad_norm_(model_r.parameters(), 1.0)
            opt.step()

    t_torch = median_time(torch_step, runs)
    t_repops = median_time(repops_step, runs)
    return {
        "gpt_torch_step_ms": t_torch * 1e3,
        "gpt_repops_step_ms": t_repops * 1e3,
        "gpt_step_ratio": t_repops / t_torch,
        **profile_gpt_step(model_r, opt, idx),
    }


def profile_gpt_step(model: TinyGPT, opt: AdamW, idx: torch.Tensor) -> dict[str, float]:
    """Split one repops step's time by route kind and op (the top ops go to stderr)."""
    per_kind: dict[str, float] = defaultdict(float)
    per_op: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    original = mode_module.ReproducibleMode._execute

    def timed(self, route, func, args, kwargs):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original(self, route, func, args, kwargs)
        finally:
            dt = time.perf_counter() - t0
            per_kind[route.kind.value] += dt
            per_op[route.name] += dt
            counts[route.name] += 1

    mode_module.ReproducibleMode._execute = timed  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        opt.zero_grad()
        with repops.reproducible():
            gpt_loss(model, idx).backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        total = time.perf_counter() - t0
    finally:
        mode_module.ReproducibleMode._execute = original  # type: ignore[method-assign]
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[:12]
    print("\nrepops GPT step, time inside ops (top 12):", file=sys.stderr)
    for name, dt in top:
        print(f"  {name:60s} {counts[name]:5d} calls {dt * 1e3:9.1f} ms", file=sys.stderr)
    inside = sum(per_kind.values())
    return {
        "gpt_ops_per_step": float(sum(counts.values())),
        "gpt_profile_total_ms": total * 1e3,
        "gpt_profile_outside_ops_ms": (total - inside) * 1e3,
        **{f"gpt_profile_{k}_ms": v * 1e3 for k, v in per_kind.items()},
    }


def bench_overhead(runs: int) -> dict[str, float]:
    x = torch.ones(1)
    n = 2000

    def loop() -> None:
        for _ in range(n):
            x.neg()

    t_plain = median_time(loop, runs)
    t_mode = median_time(in_mode(loop), runs)
    tracer_loop_time = []
    for _ in range(runs):
        tracer = repops.Tracer()
        t0 = time.perf_counter()
        with repops.reproducible(tracer=tracer):
            loop()
        tracer_loop_time.append(time.perf_counter() - t0)
    return {
        "dispatch_overhead_us": (t_mode - t_plain) / n * 1e6,
        "tracing_overhead_us": (statistics.median(tracer_loop_time) - t_plain) / n * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer runs")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    ns = parser.parse_args()
    torch.set_num_threads(ns.threads)
    _numba.set_num_threads(ns.threads)
    runs = 3 if ns.quick else 5
    result: dict[str, float | int | str] = {"bench": "repops", "threads": ns.threads}
    result.update(bench_overhead(runs))
    result.update(bench_matmul(runs))
    result.update(bench_rows(runs, 64, 32768 if ns.quick else 65536))
    if ns.quick:
        result.update(bench_gpt(runs, layers=2, width=128, seq=64, batch=8))
    else:
        result.update(bench_gpt(runs, layers=4, width=256, seq=128, batch=16))
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
    print("\n".join(f"{k:32s} {v}" for k, v in rounded.items()), file=sys.stderr)
    print(json.dumps(rounded))


if __name__ == "__main__":
    main()
