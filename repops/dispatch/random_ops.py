"""Random ops routed to repops.rng (placeholder until repops/rng.py lands)."""

from __future__ import annotations

from typing import Any

import torch

from repops.errors import UnsupportedOpError


def structure_state(mode: Any) -> dict[str, Any] | None:
    return None


def run_random(
    mode: Any, func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any] | None]:
    raise UnsupportedOpError(str(func), "repops.rng is not available yet")
