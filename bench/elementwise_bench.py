"""repops' float32 transcendentals against torch's, one op at a time under the mode.

Each line times ``fn(x)`` on 2^21 float32 values (8 MiB, normal with sd 3; positive for log
and rsqrt) with torch and inside ``repops.reproducible()``, interleaved, best of ``--runs``,
at each thread count. ``ratio`` is torch's time over repops' (above 1: repops is faster).
Which functions compute in binary32 and which in binary64 is spec/elementwise.md's choice;
the table shows what that costs. Then the in-place updates of torch's Adam/AdamW
(``addcdiv_``...) on the same size, as an optimizer kept inside the mode runs them. Prints a
table on stderr and ONE JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from repops import _numba

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_info
from repops_bench import best_times, in_mode

FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "exp": torch.exp,
    "expm1": torch.expm1,
    "log": torch.log,
    "log1p": torch.log1p,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "erf": torch.erf,
    "gelu": F.gelu,
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "sin": torch.sin,
    "cos": torch.cos,
    "rsqrt": torch.rsqrt,
}
POSITIVE = ("log", "rsqrt", "log1p")
#: The in-place updates of torch's Adam/AdamW (an optimizer kept inside the mode), on a state
#: ``s`` with a gradient ``g`` and a positive second moment ``v``; small coefficients keep the
#: state finite over every run.
IN_PLACE: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "addcdiv_": lambda s, g, v: s.addcdiv_(g, v, value=-1e-6),
    "addcmul_": lambda s, g, v: v.addcmul_(g, g, value=1e-6),
    "lerp_": lambda s, g, v: s.lerp_(g, 1e-3),
    "add_alpha_": lambda s, g, v: s.add_(g, alpha=-1e-6),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size", type=int, default=1 << 21)
    args = parser.parse_args()
    x = torch.randn(args.size, generator=torch.Generator().manual_seed(0)) * 3
    positive = x.abs() + 1e-3
    out: dict[str, object] = {"bench": "repops_elementwise", **machine_info(),
                              "elements": args.size}
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        _numba.set_num_threads(threads)
        for name, fn in FUNCTIONS.items():
            arg = positive if name in POSITIVE else x

            def call(fn: Callable[[torch.Tensor], torch.Tensor] = fn,
                     arg: torch.Tensor = arg) -> torch.Tensor:
                return fn(arg)

            t_torch, t_repops = best_times([call, in_mode(call)], args.runs)
            out[f"{name}_ratio_t{threads}"] = round(t_torch / t_repops, 3)
            out[f"{name}_repops_ns_per_element_t{threads}"] = round(t_repops / args.size * 1e9, 3)
            print(f"t{threads} {name:10s} torch {t_torch * 1e3:7.3f} ms  repops "
                  f"{t_repops * 1e3:7.3f} ms  ratio {t_torch / t_repops:5.2f}", file=sys.stderr)
        state, grad, second = x.clone(), x * 0.1, positive.clone()
        for name, update in IN_PLACE.items():

            def step(update: Callable[..., torch.Tensor] = update,
                     tensors: tuple[torch.Tensor, ...] = (state, grad, second)) -> torch.Tensor:
                return update(*tensors)

            t_torch, t_repops = best_times([step, in_mode(step)], args.runs)
            out[f"{name}_ratio_t{threads}"] = round(t_torch / t_repops, 3)
            print(f"t{threads} {name:10s} torch {t_torch * 1e3:7.3f} ms  repops "
                  f"{t_repops * 1e3:7.3f} ms  ratio {t_torch / t_repops:5.2f}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
