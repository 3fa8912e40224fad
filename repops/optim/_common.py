"""Pieces the repops optimizer classes share: the mode guard, the shared-memory test and the
vendor-path check.

Why a guard: an optimizer step outside ``repops.reproducible()`` would run its ops on whatever
kernels torch picks. ``step()`` therefore runs inside the active reproducible mode, or enters a
strict one for the duration of the step when none is active, so a repops optimizer is never
silently non-reproducible.

The updates themselves are :mod:`repops.optim.functional`, shared with verde's jobs.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

from repops.dispatch.mode import ReproducibleMode


@contextlib.contextmanager
def reproducible_step() -> Iterator[bool]:
    """Run the body in the active reproducible mode, or in a fresh strict one if none is on.

    The body gets whether it may run fused updates (same bits, fewer ops): only where that
    mode allows it (:attr:`ReproducibleMode.may_fuse`: nothing traces) and is the innermost
    dispatch mode, so no other mode above it (an op logger, a FLOP counter) misses the ops.
    """
    stack = _get_current_dispatch_mode_stack()
    for mode in stack:
        if isinstance(mode, ReproducibleMode):
            yield mode.may_fuse and mode is stack[-1]
            return
    with ReproducibleMode(strict=True) as mode:
        yield mode.may_fuse


def share_memory(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether any two of ``tensors`` may share memory (one tensor twice, overlapping views):
    an in-place update of one would then change another's input.

    Each tensor counts as the byte span from its first to its last element, not its whole
    storage: disjoint views of one buffer (gradients as views of a communication bucket,
    parameters in one flat buffer) keep the in-place paths. Interleaved views count as
    sharing, which only costs those a copy."""
    spans = sorted((t.data_ptr(), _span_bytes(t)) for t in tensors if t.numel())
    return any(start < prev_start + prev_size
               for (prev_start, prev_size), (start, _) in itertools.pairwise(spans))


def _span_bytes(t: torch.Tensor) -> int:
    """Bytes from ``t``'s first element to the end of its last (torch strides are >= 0)."""
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True))
    return (last + 1) * t.element_size()


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
