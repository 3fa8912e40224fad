"""Argument checks shared by the ``verde.distill`` modules (one clear error per bad input)."""

from __future__ import annotations

import math

import torch

from verde.distill.errors import DistillArgumentError, ShapeMismatchError

_PROB_SUM_TOLERANCE = 1e-3


def check_rate(name: str, value: float) -> float:
    """Return ``value`` as a float if it lies strictly inside (0, 1), else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DistillArgumentError(f"{name} must be a number in (0, 1), got {value!r}")
    value = float(value)
    if not (0.0 < value < 1.0) or math.isnan(value):
        raise DistillArgumentError(f"{name} must lie strictly between 0 and 1, got {value}")
    return value


def check_positive_int(name: str, value: int) -> int:
    """Return ``value`` if it is an int >= 1, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DistillArgumentError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_non_negative_int(name: str, value: int) -> int:
    """Return ``value`` if it is an int >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DistillArgumentError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DistillArgumentError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not (value > 0.0) or not math.isfinite(value):
        raise DistillArgumentError(f"{name} must be a finite positive number, got {value}")
    return value


def check_probabilities(name: str, probs: torch.Tensor) -> torch.Tensor:
    """Check that ``probs`` is a (batch, classes) float tensor of probability rows."""
    if not isinstance(probs, torch.Tensor):
        raise DistillArgumentError(f"{name} must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ShapeMismatchError(
            f"{name} must have shape (batch, classes) with classes >= 2, got {tuple(probs.shape)}"
        )
    if not probs.is_floating_point():
        raise DistillArgumentError(f"{name} must be a floating-point tensor, got {probs.dtype}")
    if probs.numel() == 0:
        return probs
    if not torch.isfinite(probs).all():
        raise DistillArgumentError(f"{name} contains NaN or infinite values")
    if (probs < 0).any():
        raise DistillArgumentError(f"{name} has negative entries: rows must be probabilities")
    sums = probs.sum(dim=1)
    if ((sums - 1.0).abs() > _PROB_SUM_TOLERANCE).any():
        worst = float((sums - 1.0).abs().max())
        raise DistillArgumentError(
            f"{name} rows must sum to 1 (softmax outputs); largest deviation is {worst:.3g}"
        )
    return probs


def check_same_requests(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise unless ``a`` and ``b`` have the same shape (same requests, same classes)."""
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeMismatchError(
            f"{name_a} has shape {tuple(a.shape)} but {name_b} has shape {tuple(b.shape)}; "
            "they must describe the same requests and classes"
        )


def check_batch_match(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise unless ``a`` and ``b`` have the same leading (batch) dimension."""
    if a.ndim == 0 or b.ndim == 0 or a.shape[0] != b.shape[0]:
        raise ShapeMismatchError(
            f"{name_a} (shape {tuple(a.shape)}) and {name_b} (shape {tuple(b.shape)}) must have "
            "the same number of requests in dimension 0"
        )
