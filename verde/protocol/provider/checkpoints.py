"""Full checkpoints every k steps, as safetensors (in memory or in a directory).

Why: a provider keeps only digests for every step (cheap) and full states every k steps, and
replays at most k - 1 steps to answer a query about any step (Verde, Arun et al. 2025:
"providers only store and hash intermediate checkpoints"). safetensors, not pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load, save


class CheckpointStore:
    """Checkpoints keyed by step; ``nearest(step)`` is the latest one at or before ``step``."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[int, bytes] = {}
        self._steps: set[int] = set()
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def save(self, step: int, state: Mapping[str, torch.Tensor]) -> None:
        data = save({k: v.detach().contiguous() for k, v in state.items()})
        if self.directory is not None:
            (self.directory / f"step-{step:08d}.safetensors").write_bytes(data)
        else:
            self._memory[step] = data
        self._steps.add(step)

    def nearest(self, step: int) -> int:
        candidates = [s for s in self._steps if s <= step]
        if not candidates:
            raise KeyError(f"no checkpoint at or before step {step}")
        return max(candidates)

    def load(self, step: int) -> dict[str, torch.Tensor]:
        if self.directory is not None:
            data = (self.directory / f"step-{step:08d}.safetensors").read_bytes()
        else:
            data = self._memory[step]
        return dict(load(data))

    @property
    def steps(self) -> list[int]:
        return sorted(self._steps)
