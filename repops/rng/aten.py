"""Adapters from aten random overloads to :mod:`repops.rng.ops`, for the dispatch mode.

``ATEN_RANDOM[name](stream, *args, **kwargs)`` takes exactly the aten overload's arguments
after the stream and returns what the overload returns. ``generator=`` is accepted and
ignored (inside the mode the stream replaces every torch generator); ``dtype`` defaults as in
torch; a ``device`` other than CPU, or a ``layout`` other than strided, is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from repops.errors import UnsupportedInputError
from repops.rng import ops
from repops.rng.stream import PhiloxStream


def _factory_kwargs(op: str, kwargs: dict[str, Any], default: torch.dtype) -> torch.dtype:
    dev = kwargs.get("device")
    if dev is not None and torch.device(dev).type != "cpu":
        raise UnsupportedInputError(f"{op}: repops.rng makes CPU tensors, got device {dev}")
    layout = kwargs.get("layout")
    if layout is not None and layout != torch.strided:
        raise UnsupportedInputError(f"{op}: only strided tensors are supported, got {layout}")
    dtype = kwargs.get("dtype")
    return default if dtype is None else dtype


def _uniform_(s: PhiloxStream, self: torch.Tensor, from_: float = 0.0, to: float = 1.0,
              **kw: Any) -> torch.Tensor:
    return ops.uniform_(s, self, kw.get("from", from_), to)


def _normal_(s: PhiloxStream, self: torch.Tensor, mean: float = 0.0, std: float = 1.0,
             **kw: Any) -> torch.Tensor:
    return ops.normal_(s, self, mean, std)


def _bernoulli_(s: PhiloxStream, self: torch.Tensor, p: Any = 0.5, **kw: Any) -> torch.Tensor:
    return ops.bernoulli_(s, self, p)


def _bernoulli(s: PhiloxStream, self: torch.Tensor, **kw: Any) -> torch.Tensor:
    return ops.bernoulli(s, self)


def _bernoulli_p(s: PhiloxStream, self: torch.Tensor, p: float, **kw: Any) -> torch.Tensor:
    return ops.bernoulli_(s, torch.empty_like(self, memory_format=torch.contiguous_format), p)


def _native_dropout(s: PhiloxStream, input: torch.Tensor, p: float,
                    train: bool | None) -> tuple[torch.Tensor, torch.Tensor]:
    return ops.native_dropout(s, input, p, train)


def _rand(s: PhiloxStream, size: Sequence[int], **kw: Any) -> torch.Tensor:
    return ops.rand(s, size, _factory_kwargs("rand", kw, torch.get_default_dtype()))


def _randn(s: PhiloxStream, size: Sequence[int], **kw: Any) -> torch.Tensor:
    return ops.randn(s, size, _factory_kwargs("randn", kw, torch.get_default_dtype()))


def _rand_like(s: PhiloxStream, self: torch.Tensor, **kw: Any) -> torch.Tensor:
    return ops.rand(s, self.shape, _factory_kwargs("rand_like", kw, self.dtype))


def _randn_like(s: PhiloxStream, self: torch.Tensor, **kw: Any) -> torch.Tensor:
    return ops.randn(s, self.shape, _factory_kwargs("randn_like", kw, self.dtype))


def _randint_low(s: PhiloxStream, low: int, high: int, size: Sequence[int],
                 **kw: Any) -> torch.Tensor:
    return ops.randint(s, low, high, size, _factory_kwargs("randint", kw, torch.int64))


def _randint(s: PhiloxStream, high: int, size: Sequence[int], **kw: Any) -> torch.Tensor:
    return ops.randint(s, 0, high, size, _factory_kwargs("randint", kw, torch.int64))


def _randperm(s: PhiloxStream, n: int, **kw: Any) -> torch.Tensor:
    return ops.randperm(s, n, _factory_kwargs("randperm", kw, torch.int64))


ATEN_RANDOM: dict[str, Callable[..., Any]] = {
    "aten.uniform_.default": _uniform_,
    "aten.normal_.default": _normal_,
    "aten.bernoulli_.float": _bernoulli_,
    "aten.bernoulli_.Tensor": _bernoulli_,
    "aten.bernoulli.default": _bernoulli,
    "aten.bernoulli.p": _bernoulli_p,
    "aten.native_dropout.default": _native_dropout,
    "aten.rand.default": _rand,
    "aten.randn.default": _randn,
    "aten.rand_like.default": _rand_like,
    "aten.randn_like.default": _randn_like,
    "aten.randint.low": _randint_low,
    "aten.randint.default": _randint,
    "aten.randperm.default": _randperm,
}
