"""Output arrays of a megabyte or more, reused once their tensors die.

Why: a fresh large array costs its first touch. numpy advises transparent huge pages for every
array of 4 MiB or more, and where the kernel's THP defrag setting is ``madvise`` (the Debian
and Ubuntu default) that first touch can stall in direct compaction: in the gpt bench step the
erf-GELU's 8 MiB output took 43-67 ms a step to fill against 6 ms for torch's GELU. Memory from
torch's allocator gets no advice and does not stall, but its 4 KiB pages fault one by one and
the products that read it in place lose the huge pages (an earlier stop measured the whole
step slower that way). A freed output's memory, handed to the next output of the same size,
is already mapped and touched: neither cost recurs. A training step allocates the same sizes
every step, so the same buffers come round.

How the memory comes back: the array handed out is a view of a pooled slab through a small
holder object (numpy's ``__array_interface__``); the holder is the array's memory owner, so it
lives exactly as long as any array or tensor that uses the memory, and its finaliser returns
the slab to the pool. At most ``MAX_POOLED_BYTES`` wait in the pool; beyond that the least
recently returned slabs are let go. Contents are undefined, like ``np.empty``'s.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

import numpy as np

#: Smaller outputs come from numpy directly: malloc reuses them cheaply.
MIN_BYTES = 1 << 20
#: The most memory the pool holds while nothing uses it.
MAX_POOLED_BYTES = 256 << 20


class _SlabPool:
    """Free slabs by byte size, each stamped with the order it came back in; when the pool is
    full the oldest slab goes first (so sizes a run no longer uses do not hold the room of
    those it does). An RLock, because a holder's finaliser may run during a garbage
    collection triggered inside ``take`` on the same thread."""

    def __init__(self) -> None:
        #: Per size, (return stamp, slab), oldest on the left; no size maps to an empty deque.
        self._free: dict[int, deque[tuple[int, np.ndarray]]] = {}
        self._stamp = 0
        self._pooled = 0
        self._lock = threading.RLock()

    def reset_after_fork(self) -> None:
        """A forked child starts empty, with a new lock (another thread of the parent may
        have held the old one at the fork)."""
        self._free, self._pooled = {}, 0
        self._lock = threading.RLock()

    def _pop(self, nbytes: int, newest: bool) -> np.ndarray:
        free = self._free[nbytes]
        _, slab = free.pop() if newest else free.popleft()
        if not free:
            del self._free[nbytes]
        self._pooled -= nbytes
        return slab

    def take(self, nbytes: int) -> np.ndarray:
        with self._lock:
            if nbytes in self._free:
                return self._pop(nbytes, newest=True)
        return np.empty(nbytes, dtype=np.uint8)

    def give_back(self, slab: np.ndarray) -> None:
        nbytes = slab.nbytes
        if nbytes > MAX_POOLED_BYTES:
            return
        with self._lock:
            while self._pooled + nbytes > MAX_POOLED_BYTES:
                self._pop(min(self._free, key=lambda size: self._free[size][0][0]), newest=False)
            self._stamp += 1
            self._free.setdefault(nbytes, deque()).append((self._stamp, slab))
            self._pooled += nbytes

    def pooled_bytes(self) -> int:
        """Bytes waiting in the pool (for tests and diagnostics)."""
        with self._lock:
            return self._pooled


_POOL = _SlabPool()


def _reset_pool_after_fork() -> None:
    _POOL.reset_after_fork()


os.register_at_fork(after_in_child=_reset_pool_after_fork)


class _SlabHolder:
    """The memory owner of one handed-out array: returns its slab when the last user dies."""

    __slots__ = ("__array_interface__", "_slab")
    #: Held by the class, so finalisers that run while the interpreter shuts down still find it.
    _pool = _POOL

    def __init__(self, slab: np.ndarray, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self._slab = slab
        self.__array_interface__ = {
            "data": (slab.ctypes.data, False), "shape": shape, "typestr": dtype.str,
            "version": 3,
        }

    def __del__(self) -> None:
        self._pool.give_back(self._slab)


def reusable_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array, from the pool when it has a megabyte or more."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dt)
    return np.asarray(_SlabHolder(_POOL.take(nbytes), tuple(shape), dt))


def reusable_empty_like(x: np.ndarray) -> np.ndarray:
    """:func:`reusable_empty` of ``x``'s shape and dtype."""
    return reusable_empty(x.shape, x.dtype)


def pooled_bytes() -> int:
    """Bytes of freed outputs waiting to be reused."""
    return _POOL.pooled_bytes()
