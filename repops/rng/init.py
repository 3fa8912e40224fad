"""Parameter initialisation on a :class:`PhiloxStream`, with torch.nn.init's formulas.

The bounds and standard deviations are computed exactly as ``torch.nn.init`` computes them
(Python binary64 arithmetic and ``math.sqrt``, which is correctly rounded), so the only
difference from torch is where the random numbers come from. Methods: He et al., "Delving
deep into rectifiers", ICCV 2015 (kaiming); Glorot & Bengio, "Understanding the difficulty of
training deep feedforward neural networks", AISTATS 2010 (xavier).
"""

from __future__ import annotations

import math

import torch

from repops.rng.ops import normal_, uniform_
from repops.rng.stream import PhiloxStream

_LINEAR_GAINS = {
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "sigmoid",
}  # fmt: skip


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """torch.nn.init.calculate_gain."""
    if nonlinearity in _LINEAR_GAINS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, int | float) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def fan_in_and_fan_out(tensor: torch.Tensor) -> tuple[int, int]:
    """torch.nn.init._calculate_fan_in_and_fan_out."""
    if tensor.dim() < 2:
        raise ValueError("fan in and fan out need a tensor with at least 2 dimensions")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.size(1) * receptive, tensor.size(0) * receptive


def _fan(tensor: torch.Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _kaiming_std(tensor: torch.Tensor, a: float, mode: str, nonlinearity: str) -> float:
    """He et al. (ICCV 2015): ``gain / sqrt(fan)``, the std both kaiming inits draw with."""
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))


def kaiming_uniform_(
    stream: PhiloxStream, tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> torch.Tensor:
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(stream, tensor, -bound, bound)


def kaiming_normal_(
    stream: PhiloxStream, tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> torch.Tensor:
    return normal_(stream, tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


def xavier_uniform_(stream: PhiloxStream, tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(stream, tensor, -a, a)


def xavier_normal_(stream: PhiloxStream, tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(stream, tensor, 0.0, std)


def linear_default_init_(
    stream: PhiloxStream, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> None:
    """nn.Linear / nn.Conv reset_parameters: kaiming_uniform_(a=sqrt(5)), then the bias
    uniform in +-1/sqrt(fan_in) (weight first, then bias, from the same stream)."""
    kaiming_uniform_(stream, weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(stream, bias, -bound, bound)
