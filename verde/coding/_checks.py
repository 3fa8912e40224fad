"""Argument checks shared by the coded-computation modules (one clear error per bad input)."""

from __future__ import annotations

import math

import numpy as np


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an int if it is an integer (numpy integers too, never a bool) with
    ``low <= value`` (and ``value < high`` when given), else ValueError naming ``name``."""
    ok = not isinstance(value, bool) and isinstance(value, int | np.integer)
    if ok and low <= int(value) and (high is None or int(value) < high):  # type: ignore[arg-type]
        return int(value)  # type: ignore[arg-type]
    where = f">= {low}" if high is None else f"in [{low}, {high})"
    raise ValueError(f"{name} must be an int {where}, got {value!r}")


def check_number(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a float if it is a finite number >= 0 (> 0 when ``positive``), else
    ValueError naming ``name``."""
    ok = not isinstance(value, bool) and isinstance(value, int | float | np.floating)
    number = float(value) if ok else math.nan  # type: ignore[arg-type]
    if ok and math.isfinite(number) and (number > 0 if positive else number >= 0):
        return number
    raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, "
                     f"got {value!r}")
