"""Fixtures for the kernel tests (the bit comparisons live one folder up, in tests/repops)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import pytest
import torch

from repops._numba import set_num_threads
from repops.kernels import _rows

OnAllPaths = Callable[[Callable[[], Any]], list[Any]]
WideRandn = Callable[..., torch.Tensor]



@pytest.fixture(autouse=True)
def _fixed_seed() -> None:
    """Unseeded draws in these tests (closeness to torch) are the same on every run."""
    torch.manual_seed(1234)


@pytest.fixture
def on_all_paths(monkeypatch: pytest.MonkeyPatch) -> OnAllPaths:
    """``on_all_paths(fn)``: ``fn()`` on the serial path, then on the parallel path (every
    row kernel forced past ``_rows.PARALLEL_MIN``) with 1 and with 2 numba threads.

    The thread count in force before the call is restored, whatever ``fn`` raises.
    """

    def run(fn: Callable[[], Any]) -> list[Any]:
        out = [fn()]
        before = numba.get_num_threads()
        with monkeypatch.context() as mp:
            mp.setattr(_rows, "PARALLEL_MIN", 0)
            try:
                for n in (1, 2):
                    set_num_threads(n)
                    out.append(fn())
            finally:
                set_num_threads(before)
        return out

    return run


def _wide_randn(
    shape: tuple[int, ...],
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    spread: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.exp(spread * torch.randn(shape, generator=g))
    return x.to(dtype)


@pytest.fixture(scope="session")
def wide_randn() -> WideRandn:
    """``wide_randn(shape, dtype, seed, spread=2.0, generator=None)``: ``z1 * exp(spread * z2)``
    for two standard normal draws, in float32, then rounded to ``dtype``.

    Why: magnitudes spread over many binades make any change of summation order show up in
    the bits. ``generator`` continues a caller's stream instead of seeding a new one.
    """
    return _wide_randn
