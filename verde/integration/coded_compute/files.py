"""The files a coded-computation user hands over: matrices and batches as ``.npy`` (never
unpickled), model parameters as ``.safetensors`` (what ``verde train-coded --out`` writes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from verde.integration.coded_compute.errors import CodedInputError

__all__ = ["CodedInputError", "load_array", "load_parameters", "save_array"]


def load_array(path: Path, what: str, *, ndim: int | None = None) -> torch.Tensor:
    """A float array from an ``.npy`` file as a float32 tensor (``allow_pickle=False``)."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CodedInputError(f"{what} {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise CodedInputError(f"{what} {path}: not a readable .npy array ({exc})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        kind = getattr(array, "dtype", type(array).__name__)
        raise CodedInputError(f"{what} {path}: expected a float array, got {kind}")
    if ndim is not None and array.ndim != ndim:
        raise CodedInputError(f"{what} {path}: expected {ndim} dimensions, got shape "
                              f"{tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise CodedInputError(f"{what} {path}: holds NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def load_parameters(path: Path) -> dict[str, torch.Tensor]:
    """Named parameters from a ``.safetensors`` file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise CodedInputError(f"parameters {path}: no such file")
    try:
        params = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CodedInputError(f"parameters {path}: not a readable safetensors file "
                              f"({exc})") from None
    if not params:
        raise CodedInputError(f"parameters {path}: holds no tensors")
    return params


def save_array(path: Path, value: torch.Tensor) -> None:
    """Write ``value`` as ``.npy`` (the directory is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, value.detach().cpu().numpy(), allow_pickle=False)
