"""Full checkpoints every k steps, as safetensors (in memory or in a directory).

Why: a provider keeps only digests for every step (cheap) and full states every k steps, and
replays at most k - 1 steps to answer a query about any step (Verde, Arun et al. 2025:
"providers only store and hash intermediate checkpoints"). safetensors, not pickle.

Checkpoints are stored by content: given the entries' digests (the recorder has them), an
entry whose digest is the one an earlier checkpoint stored is not stored again, only pointed
to. Inference and generate jobs pass their parameters through unchanged, so a model's weights
are kept once per job however many checkpoints it takes (for training jobs every parameter
changes each step, and nothing is shared).
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
        #: step -> entry name -> the step whose stored tensors hold that entry
        self._index: dict[int, dict[str, int]] = {}
        #: entry name -> (its digest, the step that stored it), for the latest stored
        self._stored: dict[str, tuple[bytes, int]] = {}
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def save(self, step: int, state: Mapping[str, torch.Tensor],
             digests: Mapping[str, bytes] | None = None) -> None:
        """Checkpoint ``state`` at ``step``; with ``digests`` (name -> tensor digest), entries
        an earlier checkpoint stored with the same digest are pointed to, not stored."""
        index: dict[str, int] = {}
        new: dict[str, torch.Tensor] = {}
        for name, tensor in state.items():
            digest = digests.get(name) if digests is not None else None
            known = self._stored.get(name)
            if digest is not None and known is not None and known[0] == digest:
                index[name] = known[1]
                continue
            new[name] = tensor.detach().contiguous()
            index[name] = step
            if digest is not None:
                self._stored[name] = (digest, step)
        data = save(new)
        if self.directory is not None:
            self._path(step).write_bytes(data)
        else:
            self._memory[step] = data
        self._index[step] = index

    def nearest(self, step: int) -> int:
        candidates = [s for s in self._index if s <= step]
        if not candidates:
            raise KeyError(f"no checkpoint at or before step {step}")
        return max(candidates)

    def load(self, step: int) -> dict[str, torch.Tensor]:
        index = self._index[step]
        blobs: dict[int, dict[str, torch.Tensor]] = {}
        out = {}
        for name, stored in index.items():
            if stored not in blobs:
                blobs[stored] = self._read(stored)
            out[name] = blobs[stored][name]
        return out

    def stored_bytes(self, step: int) -> int:
        """Bytes the checkpoint of ``step`` added (what it did not share with earlier ones)."""
        if self.directory is not None:
            return self._path(step).stat().st_size
        return len(self._memory[step])

    @property
    def steps(self) -> list[int]:
        return sorted(self._index)

    def _read(self, step: int) -> dict[str, torch.Tensor]:
        data = self._path(step).read_bytes() if self.directory is not None else self._memory[step]
        return dict(load(data))

    def _path(self, step: int) -> Path:
        if self.directory is None:
            raise ValueError("this checkpoint store keeps its checkpoints in memory")
        return self.directory / f"step-{step:08d}.safetensors"
