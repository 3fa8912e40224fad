"""Committing and checkpointing each step's state beside the next step (off the critical path).

Why: a provider commits to the digest of every step's full state (Verde, Arun et al. 2025,
phase 1), and hashing a state costs a few percent of a small model's step. Steps are pure
functions ``state s-1 -> state s`` that never write into their input, so state ``s`` can be
hashed (and checkpointed every k steps) on a worker thread while step ``s + 1`` computes:
SHA-256 and the tensor copies release the GIL. At most one state is in flight, so memory
stays at two states; the main thread only waits when hashing is slower than a step, and
:attr:`wait_s` says how long that was.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from proofs.digest import tensor_digest
from proofs.state import StateCommitment
from verde.protocol.provider.checkpoints import CheckpointStore


class StateRecorder:
    """Commits states in step order on one worker thread; use as a context manager."""

    def __init__(self, checkpoints: CheckpointStore) -> None:
        self.checkpoints = checkpoints
        self.roots: list[bytes] = []
        self.last: StateCommitment | None = None
        #: Seconds the caller spent waiting for commitments (the cost on the critical path).
        self.wait_s = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verde-commit")
        self._pending: Future[StateCommitment] | None = None
        self._digests: dict[str, tuple[torch.Tensor, int, bytes]] = {}

    def __enter__(self) -> StateRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def record(self, step: int, state: Mapping[str, torch.Tensor], *, checkpoint: bool) -> None:
        """Commit ``state`` (and checkpoint it) once the previous state is committed."""
        self._collect()
        self._pending = self._pool.submit(self._commit, step, dict(state), checkpoint)

    def finish(self) -> StateCommitment:
        """Wait for the last commitment; every root is then in :attr:`roots`."""
        self._collect()
        if self.last is None:
            raise RuntimeError("no state was recorded")
        return self.last

    def _collect(self) -> None:
        if self._pending is not None:
            t0 = time.perf_counter()
            self.last = self._pending.result()
            self.wait_s += time.perf_counter() - t0
            self.roots.append(self.last.root)
            self._pending = None

    def _commit(self, step: int, state: dict[str, torch.Tensor],
                checkpoint: bool) -> StateCommitment:
        # A tensor the previous state held too (same object, not written since: inference and
        # generate steps pass parameters through) keeps its digest; the rest are hashed.
        digests = {}
        for name, tensor in state.items():
            known = self._digests.get(name)
            if known is not None and known[0] is tensor and known[1] == tensor._version:
                digests[name] = known[2]
            else:
                digests[name] = tensor_digest(tensor)
        self._digests = {name: (state[name], state[name]._version, digest)
                         for name, digest in digests.items()}
        commitment = StateCommitment(digests)
        if checkpoint:
            self.checkpoints.save(step, state, digests)
        return commitment
