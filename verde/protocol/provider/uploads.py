"""Uploaded states a provider holds until a job starts from them, keyed by their state root.

Why keyed by root: a job that starts from an explicit state 0 names it only by its
``proofs.state.StateCommitment`` root (``JobSpec.init``), so the upload and the job meet at
that root and nothing else needs to be trusted: whoever uploads, the job runs on exactly the
state its spec commits to.

Why bounded: uploads come from other parties before any job exists, so the store keeps at
most ``max_states`` states (default 64) and ``max_bytes`` tensor bytes (default 4 GiB: a
real model's parameters and a dataset beside them),
evicting the least recently put or used first. A state larger than ``max_bytes`` on its own is
refused with ``StateTooLarge``. Once a job is accepted, the provider pins its state outside
this store (``Provider.accept``), so an eviction cannot strand an accepted job.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

import torch

from proofs.state import StateCommitment
from verde.protocol.provider.errors import InvalidUpload, StateTooLarge

DEFAULT_MAX_STATES = 64
DEFAULT_MAX_BYTES = 4 << 30


def _nbytes(state: Mapping[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def copy_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of ``state``; refuses anything but ``str -> Tensor``."""
    if not isinstance(state, Mapping):
        raise InvalidUpload(
            f"state must be a mapping of name -> tensor, got {type(state).__name__}")
    if not state:
        raise InvalidUpload("state is empty: a job state has at least one entry")
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if not isinstance(name, str) or not name:
            raise InvalidUpload(f"state entry names must be non-empty str, got {name!r}")
        if not isinstance(t, torch.Tensor):
            raise InvalidUpload(f"state entry {name!r}: expected a torch.Tensor, "
                             f"got {type(t).__name__}")
        out[name] = t.detach().to("cpu", copy=True).contiguous()
    return out


class StateStore:
    """Bounded, thread-safe store of uploaded states (see the module docstring)."""

    def __init__(self, max_states: int = DEFAULT_MAX_STATES,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if not isinstance(max_states, int) or max_states < 1:
            raise ValueError(f"max_states must be a positive int, got {max_states!r}")
        if not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        self.max_states = max_states
        self.max_bytes = max_bytes
        self._states: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, state: Mapping[str, torch.Tensor]) -> str:
        """Store a copy of ``state``; return its state root (lowercase hex)."""
        copy = copy_state(state)
        size = _nbytes(copy)
        if size > self.max_bytes:
            raise StateTooLarge(f"uploaded state holds {size} tensor bytes, more than this "
                                f"provider's limit of {self.max_bytes}")
        root = StateCommitment.from_tensors(copy).root.hex()
        with self._lock:
            if root in self._states:
                self._states.move_to_end(root)
                return root
            self._states[root] = copy
            self._bytes += size
            while len(self._states) > self.max_states or self._bytes > self.max_bytes:
                _, evicted = self._states.popitem(last=False)
                self._bytes -= _nbytes(evicted)
        return root

    def get(self, root: str) -> dict[str, torch.Tensor] | None:
        """The state stored under ``root`` (a new dict of the stored tensors), or None."""
        with self._lock:
            state = self._states.get(root)
            if state is None:
                return None
            self._states.move_to_end(root)
            return dict(state)

    def __contains__(self, root: object) -> bool:
        with self._lock:
            return root in self._states

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes
