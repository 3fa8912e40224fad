"""Bit-level corruption of one operator's output, for cheating providers."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch

from repops import Tracer
from repops.dispatch.encoding import RefKey
from repops.dispatch.registry import resolve_overload
from verde.protocol.graph.execution import graph_tracer_options


def eligible(op: str, outputs: list[torch.Tensor], *, in_place: bool = False) -> bool:
    """Ops whose first output is a fresh float32 tensor: corrupting a view would corrupt its
    base as well, and so would an in-place result unless ``in_place`` (an op asked for by name,
    such as the ``bernoulli_`` that fills a dropout mask)."""
    if not op.startswith("aten.") or not outputs:
        return False
    schema = resolve_overload(op)._schema
    writes = any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)
    if writes and not in_place:
        return False
    if not writes and any(r.alias_info is not None for r in schema.returns):
        return False
    first = outputs[0]
    return first.dtype == torch.float32 and first.numel() > 0 and first.device.type != "meta"


def flip_largest_sign(t: torch.Tensor) -> None:
    """Flip the sign bit of the largest-magnitude element (in place): one bit, never masked by
    a later ReLU the way a low mantissa bit of a negative value would be."""
    flat = t.view(-1)
    index = int(torch.argmax(flat.abs()).item())
    bits = flat.view(torch.int32)
    bits[index] = bits[index] ^ torch.tensor(-(2**31), dtype=torch.int32)


class CorruptingTracer(Tracer):
    """The protocol's tracer, except that the output of the first eligible op (named ``op``,
    when given) at index >= ``target`` gets one flipped bit before it is recorded -- and before
    the program goes on with it: the cheater's run, its replays and its graph all agree."""

    def __init__(self, target: int, keep: bool | Collection[RefKey] = False,
                 op: str | None = None) -> None:
        super().__init__(**graph_tracer_options(keep))
        self.target = target
        self.op = op
        self.hit: int | None = None

    def record(self, op: str, tree: dict[str, Any], outputs: list[torch.Tensor],
               scalar: Any = None) -> Any:
        index = len(self.nodes)
        wanted = self.op is None or op == self.op
        if (self.hit is None and index >= self.target and wanted
                and eligible(op, outputs, in_place=self.op is not None)):
            with torch.no_grad():
                flip_largest_sign(outputs[0])
            self.hit = index
        return super().record(op, tree, outputs, scalar)
