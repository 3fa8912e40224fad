"""Pieces the repops optimizer classes share: the mode guard and the vendor-path check.

Why a guard: an optimizer step outside ``repops.reproducible()`` would run its ops on whatever
kernels torch picks. ``step()`` therefore runs inside the active reproducible mode, or enters a
strict one for the duration of the step when none is active, so a repops optimizer is never
silently non-reproducible.

The updates themselves are :mod:`repops.optim.functional`, shared with verde's jobs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

from repops.dispatch.mode import ReproducibleMode


@contextlib.contextmanager
def reproducible_step() -> Iterator[ReproducibleMode]:
    """Run the body in the active reproducible mode, or in a fresh strict one if none is on;
    the body gets that mode (to ask it whether fused updates may run)."""
    for mode in _get_current_dispatch_mode_stack():
        if isinstance(mode, ReproducibleMode):
            yield mode
            return
    with ReproducibleMode(strict=True) as mode:
        yield mode


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
