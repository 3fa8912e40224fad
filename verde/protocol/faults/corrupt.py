"""Bit-level corruption of one operator's output, for cheating providers."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def eligible(func: Any, result: Any) -> bool:
    """Ops whose output is a fresh floating tensor (corrupting a view would corrupt its base)."""
    schema = func._schema
    if any(r.alias_info is not None for r in schema.returns):
        return False
    if any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments):
        return False
    first = result[0] if isinstance(result, tuple | list) and result else result
    return (isinstance(first, torch.Tensor) and first.dtype == torch.float32
            and first.numel() > 0 and first.device.type != "meta")  # fmt: skip


def flip_largest_sign(t: torch.Tensor) -> None:
    """Flip the sign bit of the largest-magnitude element (in place): one bit, never masked by
    a later ReLU the way a low mantissa bit of a negative value would be."""
    flat = t.view(-1)
    index = int(torch.argmax(flat.abs()).item())
    bits = flat.view(torch.int32)
    bits[index] = bits[index] ^ torch.tensor(-(2**31), dtype=torch.int32)


class OpCorrupter(TorchDispatchMode):
    """Counts ops; corrupts the output of the first eligible op at index >= ``target``."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target
        self.count = 0
        self.done = False
        self.hit: int | None = None

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        index = self.count
        self.count += 1
        if not self.done and index >= self.target and eligible(func, result):
            first = result[0] if isinstance(result, tuple | list) else result
            flip_largest_sign(first)
            self.done = True
            self.hit = index
        return result
