"""Fit the polynomial coefficients used by repops/math (offline helper, not imported by repops).

Why: the coefficients written in repops/spec/elementwise.md must come from somewhere
reproducible. This script fits a near-minimax polynomial (least squares on Chebyshev nodes,
high-precision function values from mpmath), rounds the coefficients to the working precision,
and prints them as hex floats with the max relative error of the rounded polynomial on a dense
grid. Run: ``.venv/bin/python tools/fit_poly.py NAME``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import mpmath as mp
import numpy as np

mp.mp.dps = 40


def fit(
    fn: Callable[[mp.mpf], mp.mpf],
    lo: float,
    hi: float,
    degree: int,
    dtype: type,
    *,
    nodes: int = 400,
) -> tuple[list[float], float]:
    """Least-squares fit on Chebyshev nodes in mpmath, coefficients rounded to ``dtype``."""
    k = np.arange(nodes)
    xs = [mp.mpf(lo + hi) / 2 + mp.mpf(hi - lo) / 2 * mp.cos(mp.pi * (2 * i + 1) / (2 * nodes))
          for i in k]
    ys = [fn(x) for x in xs]
    a = mp.matrix([[x**j for j in range(degree + 1)] for x in xs])
    b = mp.matrix(ys)
    coef = mp.lu_solve(a.T * a, a.T * b)
    c = [float(dtype(float(coef[j]))) for j in range(degree + 1)]
    grid = np.linspace(lo, hi, 20001)
    err = 0.0
    for x in grid[::20]:
        xm = mp.mpf(float(x))
        p = mp.mpf(0)
        for cj in reversed(c):
            p = p * xm + mp.mpf(cj)
        ref = fn(xm)
        if ref != 0:
            err = max(err, float(abs((p - ref) / ref)))
    return c, err


def show(name: str, c: list[float], err: float) -> None:
    print(f"{name}: max rel err {err:.3e} (2^{np.log2(err) if err else -999:.1f})")
    for j, cj in enumerate(c):
        print(f"  c{j} = {float(cj).hex()}  # {cj!r}")


def q_exp(x: mp.mpf) -> mp.mpf:
    return (mp.exp(x) - 1 - x) / x**2 if x != 0 else mp.mpf(0.5)


def q_log(x: mp.mpf) -> mp.mpf:
    return (mp.log1p(x) - x) / x**2 if x != 0 else mp.mpf(-0.5)


TARGETS: dict[str, Callable[[int], tuple[list[float], float]]] = {
    "exp32": lambda d: fit(q_exp, -0.3466, 0.3466, d, np.float32),
    "log32": lambda d: fit(q_log, 0.70710678 - 1, 1.41421357 - 1, d, np.float32),
}

if __name__ == "__main__":
    name = sys.argv[1]
    deg = int(sys.argv[2])
    show(name, *TARGETS[name](deg))
