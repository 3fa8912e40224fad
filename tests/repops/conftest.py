"""Shared fixtures for the repops kernel, math and rng tests.

Why fixtures and not a helper module: tests run with ``--import-mode=importlib`` and no test
folder on ``sys.path``, so a conftest fixture is the one place every test file can reach.
None of these fixtures is autouse: tests of other repops packages in this folder see nothing
unless they ask for it. The pure functions are session-scoped (hypothesis tests may use them).

The bit comparisons keep the strictest behaviour of the copies they replace: shape and dtype
must match, every float dtype (float64 included) is compared through its integer view, and a
dtype without a view (or an integer tensor, compared exactly) never passes by accident.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numba
import numpy as np
import pytest
import torch

from repops._numba import set_num_threads

#: Integer view of each floating dtype the kernels return (same width, same bits).
INT_VIEW: dict[torch.dtype, torch.dtype] = {
    torch.float32: torch.int32,
    torch.float64: torch.int64,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]
AssertSameBits = Callable[[torch.Tensor, torch.Tensor], None]
Rand = Callable[..., torch.Tensor]


def _check_like(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)


def _int_view(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(INT_VIEW[t.dtype])


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    _check_like(a, b)
    if not a.dtype.is_floating_point:
        return torch.equal(a, b)
    return torch.equal(_int_view(a), _int_view(b))


def _same_bits_or_nan(a: torch.Tensor, b: torch.Tensor) -> bool:
    _check_like(a, b)
    if not a.dtype.is_floating_point:
        return torch.equal(a, b)
    both_nan = torch.isnan(a) & torch.isnan(b)
    return bool(((_int_view(a) == _int_view(b)) | both_nan).all())


def _assert_same_bits(a: torch.Tensor, b: torch.Tensor) -> None:
    _check_like(a, b)
    if not a.dtype.is_floating_point:
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
        return
    np.testing.assert_array_equal(_int_view(a).numpy(), _int_view(b).numpy())


def _rand(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float32).to(dtype)


@pytest.fixture(scope="session")
def same_bits() -> SameBits:
    """``same_bits(a, b)``: identical encodings everywhere, NaN payloads included."""
    return _same_bits


@pytest.fixture(scope="session")
def same_bits_or_nan() -> SameBits:
    """``same_bits_or_nan(a, b)``: identical encodings, or both NaN (payloads unspecified, C6)."""
    return _same_bits_or_nan


@pytest.fixture(scope="session")
def assert_same_bits() -> AssertSameBits:
    """Like ``same_bits`` but asserts, so that numpy prints the differing elements."""
    return _assert_same_bits


@pytest.fixture(scope="session")
def rand() -> Rand:
    """``rand(*shape, dtype=float32, seed=0)``: standard normal draws from a seeded generator,
    drawn in float32 and then rounded to ``dtype`` (same values for every dtype)."""
    return _rand


@pytest.fixture
def num_threads() -> Iterator[Callable[[int], None]]:
    """``num_threads(n)`` sets numba's thread count; the count before the test is restored."""
    before = numba.get_num_threads()
    try:
        yield set_num_threads
    finally:
        set_num_threads(before)


WithThreads = Callable[[int, Callable[[], str]], str]


def _with_threads(n: int, fn: Callable[[], str]) -> str:
    old_torch, old_numba = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(n)
    set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(old_torch)
        set_num_threads(old_numba)


@pytest.fixture(scope="session")
def with_threads() -> WithThreads:
    """``with_threads(n, fn)``: ``fn()`` with torch and numba on ``n`` threads, then restored."""
    return _with_threads


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch and numba thread for the test: the CI machine has 2 shared cores, and spinning
    worker threads on an oversubscribed machine turn a 0.3 s run into 10 s."""
    old_torch, old_numba = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    set_num_threads(1)
    yield
    torch.set_num_threads(old_torch)
    set_num_threads(old_numba)


RunCompiled = Callable[..., str]

#: The repository root, put on the subprocess's PYTHONPATH so it imports this checkout.
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def run_compiled() -> RunCompiled:
    """``run_compiled(script, cache_dir, **env)``: stdout of ``script`` run by a fresh Python.

    Why a subprocess: numba fixes its target CPU when it starts, so a build for another target
    (``NUMBA_CPU_NAME=generic``: no AVX, no FMA instruction) needs its own process, and
    ``cache_dir`` is its ``NUMBA_CACHE_DIR``: a fresh one makes it compile now, the generic
    builds share ``generic_numba_cache`` across the session, and None keeps this process's
    cache (a host build then loads what the tests before it compiled). An
    inherited ``NUMBA_CPU_NAME`` is dropped, so a run without one really is a host build. A
    failed run raises with the end of its stderr.
    """

    def run(script: str, cache_dir: Path | None, **env_extra: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CPU_NAME"}
        env.update(env_extra)
        if cache_dir is not None:
            env["NUMBA_CACHE_DIR"] = str(cache_dir)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        res = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if res.returncode != 0:
            raise AssertionError(f"subprocess failed:\n{res.stderr[-3000:]}")
        return res.stdout

    return run
