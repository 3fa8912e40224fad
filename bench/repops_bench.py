"""Benchmark repops' PyTorch integration against plain torch (eager, same thread count).

Prints ONE JSON line on stdout (a table on stderr) with the machine it ran on (``cpu_model``,
``cpu_family_model``, ``cpu_isa`` and the rest of ``_machine.machine_info``), ``isa`` (the
vector ISA numba compiled repops' kernels for), ``hardware_fma``,
``torch_isa`` (the ATen kernels torch dispatches to) and the thread counts. Then:

- ``matmul_<shape>_ratio_t<n>``: fp32 throughput of repops (the op inside reproducible()) /
  torch (the same op outside) at n threads, for 1024^3 and the shapes of a transformer step:
  activations times transposed weights (forward of nn.Linear), the two products of its
  backward (grad input; grad weight with a transposed operand, at three of the step's own
  sizes), the LM head (a transposed weight), attention's batched products, a small product;
  ``matmul_min_ratio_t<n>`` is the worst of them (target >= 0.8);
  ``matmul_small_128_outside_mode_ratio_t<n>``: the small product with repops' kernel called
  directly, outside the mode (what the mode's own cost per op leaves of that ratio);
  ``matmul_ratio`` is 1024^3 at the largest thread count;
- ``gpt_step_ratio``: one training step (forward, backward, clipping, AdamW) of a GPT with 4
  layers, width 256, sequence 128, batch 16 at the largest thread count: repops (mode + repops
  AdamW + clipping) / torch eager (target <= 1.5, goal 1.3); ``gpt_large_step_ratio`` the same
  for 8 layers of width 512; ``gpt_peak_rss_ratio``: peak resident memory of a process running
  repops steps / one running torch steps (target <= 1.25), with the memory each step adds
  above the process's baseline in ``gpt_step_rss_mb_*``;
- ``softmax_ratio``, ``layer_norm_ratio``: throughput on long rows, repops / torch;
- ``dispatch_overhead_us``: the mode's cost per op; a per-route time split of one repops step.

Each time is the best of several interleaved runs after a warm-up (numba compiles on first
use): on a shared machine the best run is the one least disturbed by other processes.

To compile the kernels for a narrower ISA, give numba a CPU name *and* its own features (a
name alone keeps the host's feature string), and pin torch to the same ISA, e.g.
``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES= ATEN_CPU_CAPABILITY=avx2``.

Usage: python bench/repops_bench.py [--quick] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import machine_info  # beside this file (the script's folder is on the path)

import repops
from repops import _numba
from repops.dispatch import mode as mode_module
from repops.kernels._target import numba_target
from repops.kernels.matmul import plain_mm
from repops.optim import AdamW, clip_grad_norm_
from tests.repops.models import TinyGPT, gpt_loss

Result = dict[str, float | int | str | bool | list[int]]


def best_times(fns: list[Callable[[], object]], runs: int) -> list[float]:
    """Best time per call of each function, the functions interleaved run by run."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(runs):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def _repeated(fn: Callable[[], object], reps: int) -> Callable[[], object]:
    """``fn`` called ``reps`` times, each result dropped before the next (so one timed run
    of a short op lasts long enough to time)."""

    def run() -> object:
        for _ in range(reps):
            out = fn()
        return out

    return run


def in_mode(fn: Callable[[], object], reps: int = 1) -> Callable[[], object]:
    """:func:`_repeated` inside one ``reproducible()`` block."""
    repeated = _repeated(fn, reps)

    def run() -> object:
        with repops.reproducible():
            return repeated()

    return run


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def matmul_shapes() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The products of a transformer step (width 256, 2048 tokens, 4 heads, MLP 1024, vocab
    512: the bench's gpt step) and 1024^3. The weight gradients take the transposed
    activations as a column-major A: 768 rows (qkv), 256 (the attention projection, where K
    is 8x M) and 256 x 1024 columns (the MLP's output layer)."""
    return {
        "1024": (_rand(1024, 1024, seed=0), _rand(1024, 1024, seed=1)),
        "linear_qkv": (_rand(2048, 256, seed=2), _rand(768, 256, seed=3).t()),
        "linear_mlp_in": (_rand(2048, 256, seed=4), _rand(1024, 256, seed=5).t()),
        "linear_mlp_out": (_rand(2048, 1024, seed=6), _rand(256, 1024, seed=7).t()),
        "grad_input": (_rand(2048, 768, seed=8), _rand(768, 256, seed=9)),
        "grad_weight": (_rand(2048, 768, seed=10).t(), _rand(2048, 256, seed=11)),
        "grad_weight_proj": (_rand(2048, 256, seed=18).t(), _rand(2048, 256, seed=19)),
        "grad_weight_mlp_out": (_rand(2048, 256, seed=23).t(), _rand(2048, 1024, seed=24)),
        "lm_head": (_rand(2048, 256, seed=25), _rand(512, 256, seed=26).t()),
        "attn_scores": (_rand(64, 128, 64, seed=12), _rand(64, 64, 128, seed=13)),
        "attn_values": (_rand(64, 128, 128, seed=14), _rand(64, 128, 64, seed=15)),
        "small_128": (_rand(128, 128, seed=16), _rand(128, 128, seed=17)),
    }


def bench_matmul(runs: int, threads: int) -> Result:
    out: Result = {}
    ratios = []
    shapes = matmul_shapes()
    for name, (a, b) in shapes.items():
        op = torch.bmm if a.dim() == 3 else torch.mm
        flop = 2 * a.numel() * b.shape[-1]
        reps = max(1, int(2e8 / flop))  # ~10 ms per timed run at 20 GFLOP/s

        def product(a: torch.Tensor = a, b: torch.Tensor = b, op=op) -> torch.Tensor:  # type: ignore[no-untyped-def]
            return op(a, b)

        t_torch, t_repops = best_times([_repeated(product, reps), in_mode(product, reps)], runs)
        t_torch, t_repops = t_torch / reps, t_repops / reps
        ratio = t_torch / t_repops
        ratios.append(ratio)
        out[f"matmul_{name}_ratio_t{threads}"] = ratio
        out[f"matmul_{name}_torch_gflops_t{threads}"] = flop / t_torch / 1e9
        out[f"matmul_{name}_repops_gflops_t{threads}"] = flop / t_repops / 1e9
    out[f"matmul_min_ratio_t{threads}"] = min(ratios)
    out[f"matmul_small_128_outside_mode_ratio_t{threads}"] = _outside_mode_ratio(
        *shapes["small_128"], runs)
    return out


def _outside_mode_ratio(a: torch.Tensor, b: torch.Tensor, runs: int) -> float:
    """torch / repops on ``a @ b`` with repops' product called directly (``plain_mm``: the same
    checks, output and kernel as inside the mode, without torch's Python dispatch), so a small
    product's ratio can be told apart from the mode's cost per op."""
    reps = 50
    t_torch, t_direct = best_times(
        [_repeated(lambda: torch.mm(a, b), reps), _repeated(lambda: plain_mm((a, b)), reps)],
        runs)
    return t_torch / t_direct


def bench_rows(runs: int, rows: int, cols: int) -> Result:
    """softmax and layer norm over long rows. Each timed run calls the op ``reps`` times
    (about 10 ms, as the products' runs): a single 1 ms call, best of five, moved the ratio by
    0.3 between runs on a 2-core VM."""
    x = _rand(rows, cols, seed=20)
    w, bias = _rand(cols, seed=21), _rand(cols, seed=22)
    reps = max(1, int(1.6e8 / (rows * cols * 4)))  # ~10 ms at 16 GB/s each way
    out: Result = {}
    for name, fn in (
        ("softmax", lambda: torch.softmax(x, dim=-1)),
        ("layer_norm", lambda: F.layer_norm(x, (cols,), w, bias)),
    ):
        t_torch, t_repops = best_times([_repeated(fn, reps), in_mode(fn, reps)], runs)
        t_torch, t_repops = t_torch / reps, t_repops / reps
        out[f"{name}_ratio"] = t_torch / t_repops
        out[f"{name}_torch_ms"] = t_torch * 1e3
        out[f"{name}_repops_ms"] = t_repops * 1e3
    return out


def _gpt_setup(layers: int, width: int, seq: int, batch: int) -> tuple[TinyGPT, torch.Tensor]:
    torch.manual_seed(0)
    model = TinyGPT(vocab=512, width=width, heads=max(1, width // 64), layers=layers, seq=seq)
    idx = torch.randint(0, 512, (batch, seq + 1), generator=torch.Generator().manual_seed(2))
    return model, idx


def gpt_steps(kind: str, layers: int, width: int, seq: int,
              batch: int) -> tuple[Callable[[], None], TinyGPT, AdamW | None, torch.Tensor]:
    """One training step of ``kind`` ("torch" or "repops") as a function, and its state."""
    model, idx = _gpt_setup(layers, width, seq, batch)
    if kind == "torch":
        torch_opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def torch_step() -> None:
            torch_opt.zero_grad()
            gpt_loss(model, idx).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            torch_opt.step()

        return torch_step, model, None, idx
    opt = AdamW(model.parameters(), lr=1e-4)

    def repops_step() -> None:
        opt.zero_grad()
        with repops.reproducible():
            gpt_loss(model, idx).backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

    return repops_step, model, opt, idx


GPT = {"gpt": (4, 256, 128, 16), "gpt_large": (8, 512, 128, 16)}
GPT_QUICK = {"gpt": (2, 128, 64, 8), "gpt_large": (4, 256, 64, 8)}


def bench_gpt(runs: int, sizes: dict[str, tuple[int, int, int, int]]) -> Result:
    out: Result = {}
    for name, size in sizes.items():
        torch_step = gpt_steps("torch", *size)[0]
        repops_step, model, opt, idx = gpt_steps("repops", *size)
        t_torch, t_repops = best_times([torch_step, repops_step], runs)
        out[f"{name}_torch_step_ms"] = t_torch * 1e3
        out[f"{name}_repops_step_ms"] = t_repops * 1e3
        out[f"{name}_step_ratio"] = t_repops / t_torch
        if name == "gpt":
            assert opt is not None
            out.update(profile_gpt_step(model, opt, idx))
    return out


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status in MiB (VmRSS: now; VmHWM: the peak of this
    process image — unlike ru_maxrss, not inherited from the parent across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def gpt_memory_child(kind: str, size: tuple[int, int, int, int]) -> None:
    """Run in a fresh process: a few steps of ``kind``; print baseline and peak RSS (MiB)."""
    step = gpt_steps(kind, *size)[0]
    baseline = _status_mb("VmRSS")
    for _ in range(3):
        step()
    print(json.dumps({"baseline_mb": baseline, "peak_mb": _status_mb("VmHWM")}))


def bench_gpt_memory(threads: int, size: tuple[int, int, int, int]) -> Result:
    """Peak RSS of a process doing repops steps vs one doing torch steps (same imports)."""
    got = {}
    for kind in ("torch", "repops"):
        cmd = [sys.executable, __file__, "--memory-child", kind, "--threads", str(threads),
               "--size", ",".join(map(str, size))]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800)
        got[kind] = json.loads(res.stdout.strip().splitlines()[-1])
    return {
        "gpt_peak_rss_ratio": got["repops"]["peak_mb"] / got["torch"]["peak_mb"],
        "gpt_peak_rss_mb_torch": got["torch"]["peak_mb"],
        "gpt_peak_rss_mb_repops": got["repops"]["peak_mb"],
        "gpt_step_rss_mb_torch": got["torch"]["peak_mb"] - got["torch"]["baseline_mb"],
        "gpt_step_rss_mb_repops": got["repops"]["peak_mb"] - got["repops"]["baseline_mb"],
    }


class OpTimes:
    """Seconds spent inside the mode's ops of one block, per route kind and per op name."""

    def __init__(self) -> None:
        self.per_kind: dict[str, float] = defaultdict(float)
        self.per_op: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)


@contextmanager
def timed_ops() -> Iterator[OpTimes]:
    """Time every op the reproducible mode executes inside the block (by wrapping its one
    execution point), so a step's time can be split by op. The mode's plain-case shortcuts,
    which it tries before that point, are handed to it empty: the shortcut then runs inside
    ``_execute`` (the route's own), so its time is counted too."""
    times = OpTimes()
    original = mode_module.ReproducibleMode._execute
    original_cases = mode_module.plain_cases

    def timed(self, route, func, args, kwargs):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original(self, route, func, args, kwargs)
        finally:
            dt = time.perf_counter() - t0
            times.per_kind[route.kind.value] += dt
            times.per_op[route.name] += dt
            times.counts[route.name] += 1

    mode_module.ReproducibleMode._execute = timed  # type: ignore[method-assign]
    mode_module.plain_cases = dict  # type: ignore[assignment]
    try:
        yield times
    finally:
        mode_module.ReproducibleMode._execute = original  # type: ignore[method-assign]
        mode_module.plain_cases = original_cases


def profile_gpt_step(model: TinyGPT, opt: AdamW, idx: torch.Tensor) -> Result:
    """Split one repops step's time by route kind and op (the top ops go to stderr)."""
    with timed_ops() as times:
        t0 = time.perf_counter()
        opt.zero_grad()
        with repops.reproducible():
            gpt_loss(model, idx).backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        total = time.perf_counter() - t0
    per_kind, per_op, counts = times.per_kind, times.per_op, times.counts
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[:16]
    print("\nrepops GPT step, time inside ops (top 16):", file=sys.stderr)
    for name, dt in top:
        print(f"  {name:60s} {counts[name]:5d} calls {dt * 1e3:9.1f} ms", file=sys.stderr)
    inside = sum(per_kind.values())
    return {
        "gpt_ops_per_step": float(sum(counts.values())),
        "gpt_profile_total_ms": total * 1e3,
        "gpt_profile_outside_ops_ms": (total - inside) * 1e3,
        **{f"gpt_profile_{k}_ms": v * 1e3 for k, v in per_kind.items()},
    }


def bench_overhead(runs: int) -> Result:
    x = torch.ones(1)
    n = 2000

    def loop() -> None:
        for _ in range(n):
            x.neg()

    t_plain, t_mode = best_times([loop, in_mode(loop)], runs)
    tracer_loop_time = float("inf")
    for _ in range(runs):
        tracer = repops.Tracer()
        t0 = time.perf_counter()
        with repops.reproducible(tracer=tracer):
            loop()
        tracer_loop_time = min(tracer_loop_time, time.perf_counter() - t0)
    return {
        "dispatch_overhead_us": (t_mode - t_plain) / n * 1e6,
        "tracing_overhead_us": (tracer_loop_time - t_plain) / n * 1e6,
    }


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    _numba.set_num_threads(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer runs")
    parser.add_argument("--threads", default=None,
                        help="comma-separated thread counts (default: 1 and torch's count)")
    parser.add_argument("--memory-child", choices=["torch", "repops"], help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    default = sorted({1, torch.get_num_threads()})
    threads = [int(t) for t in ns.threads.split(",")] if ns.threads else default
    if ns.memory_child:
        set_threads(threads[-1])
        gpt_memory_child(ns.memory_child, tuple(int(v) for v in ns.size.split(",")))
        return
    runs = 3 if ns.quick else 5
    target = numba_target()
    result: Result = {
        "bench": "repops",
        **machine_info(),
        "isa": target.isa,
        "hardware_fma": target.hardware_fma,
        "torch_isa": torch.backends.cpu.get_cpu_capability(),
        "threads": threads,
        "load_avg_1min": os.getloadavg()[0],
    }
    for n in threads:
        set_threads(n)
        result.update(bench_matmul(runs, n))
    set_threads(threads[-1])
    result["matmul_ratio"] = result[f"matmul_1024_ratio_t{threads[-1]}"]
    result.update(bench_overhead(runs))
    result.update(bench_rows(runs, 64, 32768 if ns.quick else 65536))
    sizes = GPT_QUICK if ns.quick else GPT
    result.update(bench_gpt(runs, sizes))
    result.update(bench_gpt_memory(threads[-1], sizes["gpt"]))
    result["load_avg_1min_end"] = os.getloadavg()[0]
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
    print("\n".join(f"{k:36s} {v}" for k, v in rounded.items()), file=sys.stderr)
    print(json.dumps(rounded))


if __name__ == "__main__":
    main()
