"""Measure the max ulp error of repops' binary32 math functions (numbers for spec elementwise.md).

Method: for every function, a dense sample of binary32 inputs (uniform samples over the main
range, uniformly random bit patterns over the whole domain, and special points) is run through
the compiled repops function. The error of each output is ``|y - f(x)| / ulp(f(x))`` where
``ulp(v) = 2^(max(floor(log2|v|), -126) - 23)`` is the binary32 ulp at the exact value. The bulk
reference is the binary64 value from numpy/scipy (error below 2^-28 binary32 ulp, negligible);
the 64 worst inputs of every row are then recomputed with mpmath at 60 digits and the row's
maximum is the mpmath-confirmed one. Outputs that are +-0, +-inf or NaN are checked for exact
equality with the reference instead (a mismatch is reported as ``special mismatches``).

Run: ``.venv/bin/python tools/measure_ulp.py [--n 4000000] [--only exp,log]``; prints a
markdown table on stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

import mpmath as mp
import numba
import numpy as np
import scipy.special as sp

from repops._numba import inline_jit, pjit
from repops.math.erf import erf_f32
from repops.math.exp import exp_f32, expm1_f32
from repops.math.gelu import gelu_erf_backward_f32, gelu_erf_f32, gelu_tanh_f32
from repops.math.log import log1p_f32, log_f32
from repops.math.pow import pow_f32, rsqrt_f32
from repops.math.sigmoid import sigmoid_f32, silu_f32
from repops.math.tanh import tanh_f32
from repops.math.trig import cos_f32, sin_f32

mp.mp.dps = 60


def _map1(f: Callable[..., float]) -> Callable[[np.ndarray], np.ndarray]:
    @pjit
    def run(x: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
        out = np.empty_like(x)
        for i in numba.prange(x.size):
            out[i] = f(x[i])
        return out

    return run


def _map2(f: Callable[..., float]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    @pjit
    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
        out = np.empty_like(x)
        for i in numba.prange(x.size):
            out[i] = f(x[i], y[i])
        return out

    return run


def _gelu_tanh64(x: np.ndarray) -> np.ndarray:
    u = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
    return x * sp.expit(2 * u)  # = 0.5 x (1 + tanh u), without the cancellation


def _mp_gelu_tanh(x: mp.mpf) -> mp.mpf:
    u = mp.sqrt(2 / mp.pi) * (x + mp.mpf("0.044715") * x**3)
    return x / (1 + mp.exp(-2 * u))


@inline_jit
def gelu_erf_derivative_f32(x: np.float32) -> np.float32:  # pragma: no cover - compiled
    """The erf-GELU backward at grad 1: Phi(x) + x phi(x)."""
    return gelu_erf_backward_f32(np.float32(1.0), x)


def _mp_gelu_derivative(x: mp.mpf) -> mp.mpf:
    return mp.ncdf(x) + x * mp.npdf(x)


@dataclass
class Fn:
    name: str
    kernel: Callable[..., float]
    ref64: Callable[..., np.ndarray]
    refmp: Callable[..., mp.mpf]
    arity: int = 1


FUNCS = [
    Fn("exp", exp_f32, np.exp, mp.exp),
    Fn("expm1", expm1_f32, np.expm1, mp.expm1),
    Fn("log", log_f32, np.log, mp.log),
    Fn("log1p", log1p_f32, np.log1p, mp.log1p),
    Fn("tanh", tanh_f32, np.tanh, mp.tanh),
    Fn("sigmoid", sigmoid_f32, sp.expit, lambda x: 1 / (1 + mp.exp(-x))),
    Fn("silu", silu_f32, lambda x: x * sp.expit(x), lambda x: x / (1 + mp.exp(-x))),
    Fn("erf", erf_f32, sp.erf, mp.erf),
    Fn("gelu (erf)", gelu_erf_f32, lambda x: 0.5 * x * sp.erfc(-x / np.sqrt(2)),
       lambda x: x * mp.erfc(-x / mp.sqrt(2)) / 2),
    Fn("gelu (erf) derivative", gelu_erf_derivative_f32,
       lambda x: sp.ndtr(x) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi),
       _mp_gelu_derivative),
    Fn("gelu (tanh)", gelu_tanh_f32, _gelu_tanh64, _mp_gelu_tanh),
    Fn("sin", sin_f32, np.sin, mp.sin),
    Fn("cos", cos_f32, np.cos, mp.cos),
    Fn("rsqrt", rsqrt_f32, lambda x: 1 / np.sqrt(x), lambda x: 1 / mp.sqrt(x)),
    Fn("pow", pow_f32, np.power, mp.power, arity=2),
]


def _uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return rng.uniform(lo, hi, n).astype(np.float32)


def _bits(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)


def ranges(name: str, rng: np.random.Generator, n: int) -> list[tuple[str, tuple[np.ndarray, ...]]]:
    """The input sets of one function: (label, inputs)."""
    allbits = _bits(rng, n)
    if name == "exp":
        return [("[-87.3, 88.7] (normal results)", (_uniform(rng, -87.33, 88.72, n),)),
                ("[-103.9, -87.3] (subnormal results)", (_uniform(rng, -103.97, -87.33, n),)),
                ("all binary32 (random bits)", (allbits,))]
    if name in ("log",):
        return [("[0.5, 2]", (_uniform(rng, 0.5, 2.0, n),)),
                ("all positive binary32 (random bits)", (np.abs(allbits),))]
    if name == "log1p":
        return [("[-0.5, 1]", (_uniform(rng, -0.5, 1.0, n),)),
                ("all binary32 > -1 (random bits)", (np.abs(allbits),))]
    if name == "expm1":
        return [("[-1, 1]", (_uniform(rng, -1, 1, n),)),
                ("[-20, 88.7]", (_uniform(rng, -20, 88.7, n),)),
                ("all binary32 (random bits)", (allbits,))]
    if name == "silu":  # below -87.3, e^x is subnormal and loses relative precision
        return [("[-10, 10]", (_uniform(rng, -10, 10, n),)),
                ("[-87.3, 88.7]", (_uniform(rng, -87.33, 88.72, n),)),
                ("[-103.9, -87.3] (e^x subnormal)", (_uniform(rng, -103.97, -87.33, n),)),
                ("all binary32 (random bits)", (allbits,))]
    if name in ("sin", "cos"):
        return [("[-pi, pi]", (_uniform(rng, -np.pi, np.pi, n),)),
                ("[-1e4, 1e4]", (_uniform(rng, -1e4, 1e4, n),)),
                ("all binary32 (random bits)", (allbits,))]
    if name == "gelu (erf) derivative":  # zero at x = -0.75179...: no ulp bound around it
        return [("[-10, -0.9]", (_uniform(rng, -10, -0.9, n),)),
                ("[-0.6, 10]", (_uniform(rng, -0.6, 10, n),))]
    if name == "rsqrt":
        return [("all positive binary32 (random bits)", (np.abs(allbits),))]
    if name == "pow":
        return [("x in (0, 4], y in [-20, 20]",
                 (_uniform(rng, 0, 4, n), _uniform(rng, -20, 20, n))),
                ("x in [0.9, 1.1], y in [-800, 800]",
                 (_uniform(rng, 0.9, 1.1, n), _uniform(rng, -800, 800, n))),
                ("x < 0, integer y in [-30, 30]",
                 (_uniform(rng, -3, 0, n), rng.integers(-30, 31, n).astype(np.float32)))]
    return [("[-10, 10]", (_uniform(rng, -10, 10, n),)),
            ("all binary32 (random bits)", (allbits,))]


def ulp_of(v: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.abs(v)))
    return np.exp2(np.maximum(e, -126) - 23)


def measure(fn: Fn, inputs: tuple[np.ndarray, ...]) -> tuple[float, str, int, int]:
    """(max ulp, worst input, special mismatches, count) for one input set."""
    kern = _map1(fn.kernel) if fn.arity == 1 else _map2(fn.kernel)
    y = kern(*inputs).astype(np.float64)
    with np.errstate(all="ignore"):
        ref = fn.ref64(*(a.astype(np.float64) for a in inputs))
    fmax = float(np.finfo(np.float32).max)
    regular = np.isfinite(ref) & (ref != 0) & (np.abs(ref) <= fmax)
    # Outputs where the reference is special, or rounds to something special in binary32.
    with np.errstate(all="ignore"):
        ref32 = ref.astype(np.float32).astype(np.float64)
    special = ~regular
    bad = special & ~((y == ref32) | (np.isnan(y) & np.isnan(ref32)))
    err = np.zeros_like(y)
    with np.errstate(all="ignore"):
        err[regular] = np.abs(y[regular] - ref[regular]) / ulp_of(ref[regular])
    err[~np.isfinite(err)] = np.inf
    worst = np.argsort(err)[-64:]
    best = 0.0
    worst_in = ""
    for i in worst:
        args = [mp.mpf(float(a[i])) for a in inputs]
        exact = fn.refmp(*args)
        if exact == 0 or not mp.isfinite(exact):
            continue
        e = max(int(mp.floor(mp.log(abs(exact), 2))), -126) - 23
        u = float(abs(mp.mpf(y[i]) - exact) / mp.mpf(2) ** e)
        if u > best:
            best = u
            worst_in = ", ".join(float(a[i]).hex() for a in inputs)
    return best, worst_in, int(bad.sum()), y.size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4_000_000, help="inputs per range")
    ap.add_argument("--only", default="", help="comma-separated function names")
    ap.add_argument("--seed", type=int, default=20261122)
    args = ap.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    rng = np.random.default_rng(args.seed)
    print("| function | inputs | count | max ulp (mpmath-checked) | worst input "
          "| special mismatches |")
    print("|---|---|---|---|---|---|")
    for fn in FUNCS:
        if only and fn.name not in only:
            continue
        for label, inputs in ranges(fn.name, rng, args.n):
            m, w, bad, cnt = measure(fn, inputs)
            print(f"| {fn.name} | {label} | {cnt} | {m:.4f} | {w} | {bad} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
