"""Pieces the repops optimizers share: the mode guard and the written order for beta^t.

Why a guard: an optimizer step outside ``repops.reproducible()`` would run its ops on whatever
kernels torch picks. ``step()`` therefore runs inside the active reproducible mode, or enters a
strict one for the duration of the step when none is active, so a repops optimizer is never
silently non-reproducible.

Hyperparameter arithmetic (1 - beta, lr / bias_correction, ...) is done on Python floats, i.e.
IEEE binary64 with correctly rounded + - * / and sqrt (math.sqrt), identical on every platform.
Python's ``**`` and ``math.pow`` call the C library's pow, which is not correctly rounded and
differs between libms, so powers are written as repeated multiplication (:func:`float_power`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

from repops.dispatch.mode import ReproducibleMode


@contextlib.contextmanager
def reproducible_step() -> Iterator[None]:
    """Run the body in the active reproducible mode, or in a fresh strict one if none is on."""
    if any(isinstance(m, ReproducibleMode) for m in _get_current_dispatch_mode_stack()):
        yield
        return
    with ReproducibleMode(strict=True):
        yield


def float_power(base: float, exponent: int) -> float:
    """``base**exponent`` in binary64 by the written order ((base*base)*base)*...: exponent-1
    correctly rounded multiplications, left to right (1.0 for exponent 0)."""
    if isinstance(exponent, bool) or not isinstance(exponent, int) or exponent < 0:
        raise ValueError(f"exponent must be a non-negative int, got {exponent!r}")
    result = 1.0
    for _ in range(exponent):
        result = result * base
    return result


def check_no_vendor_paths(foreach: object, fused: object, capturable: object,
                          differentiable: object) -> None:
    """torch.optim's foreach/fused/capturable/differentiable switches select vendor code paths;
    repops optimizers accept them only as None/False (the torch.optim default values)."""
    for name, value in (("foreach", foreach), ("fused", fused), ("capturable", capturable),
                        ("differentiable", differentiable)):
        if value not in (None, False):
            raise ValueError(
                f"{name}={value!r}: repops optimizers have a single written update order; "
                f"pass {name}=None or False"
            )
