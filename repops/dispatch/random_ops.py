"""Random aten ops routed to repops.rng (SPEC.md C8) with the mode's Philox stream.

Every random op inside ``repops.reproducible(seed=...)`` draws from one PhiloxStream (stream
id 0 of the seed, or a stream object the caller passes and keeps across steps). The op's
values are a function of (seed, stream, offset at the draw, shape) only; the trace records the
stream state *before* the draw in the node's ``"rng"`` entry, so :func:`repops.execute_node`
redraws exactly the same values.

No seed: strict mode refuses the op (naming it); strict=False runs the vendor generator and
marks the run non-reproducible. An aten random op with no repops.rng adapter is treated the
same way.

Structure-only runs (meta / FakeTensor): the stream is advanced exactly as in a real run, by
drawing into a real zero tensor of the same shape, so a shape-only trace records the same
``"rng"`` states as the real trace (the values are discarded; the vendor meta kernel gives the
output).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import _disable_current_modes

from repops.dispatch.trace import is_structure_only
from repops.errors import UnsupportedOpError


def _adapter(name: str) -> Any:
    from repops.rng.aten import ATEN_RANDOM

    return ATEN_RANDOM.get(name)


def mode_stream(mode: Any) -> Any:
    """The mode's PhiloxStream (created from ``mode.seed`` on first use), or None."""
    if mode._rng is None and mode.seed is not None:
        from repops.rng import PhiloxStream

        mode._rng = mode.seed if isinstance(mode.seed, PhiloxStream) else PhiloxStream(mode.seed)
    return mode._rng


def _materialise(value: Any) -> Any:
    """A real zero tensor for a structure-only one (same shape and dtype, CPU)."""
    if isinstance(value, torch.Tensor) and is_structure_only(value):
        return torch.zeros(tuple(value.shape), dtype=value.dtype)
    if isinstance(value, dict):
        return {k: _materialise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_materialise(v) for v in value)
    if isinstance(value, torch.device):
        return torch.device("cpu")
    return value


def run_random(
    mode: Any,
    func: torch._ops.OpOverload,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    structure_only: bool = False,
) -> tuple[Any, dict[str, Any] | None]:
    """Run one random op; returns (result, stream state before the draw or None).

    ``state`` (replay) draws from a fresh stream at that recorded state instead of the mode's.
    """
    name = str(func)
    adapter = _adapter(name)
    if state is not None:
        from repops.rng import PhiloxStream

        stream = PhiloxStream.from_state_dict(dict(state))
    else:
        stream = mode_stream(mode)
    if adapter is None or stream is None:
        reason = (
            "repops.rng has no adapter for it" if adapter is None
            else "a random op needs repops.reproducible(seed=...)"
        )
        if mode.strict:
            raise UnsupportedOpError(name, reason)
        mode._note_nonreproducible(name)
        return func(*args, **kwargs), None
    before = stream.state_dict()
    if structure_only:
        with _disable_current_modes():
            adapter(stream, *_materialise(args), **_materialise(kwargs))
        return func(*args, **kwargs), before
    return adapter(stream, *args, **kwargs), before
