"""The packing workspaces of the matrix-product core: taken for a product, given back, reused.

Why: a product packs B (and large ones A) into fresh buffers of a few megabytes, and glibc
gives memory that size back to the system when it is freed (``munmap`` above its mmap
threshold; below it, trimming the heap's top once more than twice that threshold is free:
packed A and B together are), so every product of a training step faulted its packing
buffers in again, page by page: the weight gradient of the attention projection
(256 x 2048 x 256 on two threads) took about a thousand minor faults a call on a 2-core
Zen 3, 4.7 ms against 1.8 ms without them. Memory held here is mapped and touched once; a step
runs the same products every step, so after the first step no product faults its packing in.

How: a product takes a workspace from the pool, the compiled body packs into it when the
packing fits and into fresh arrays when it does not, and returns how many elements it needed;
the workspace grows to that size for the next product and goes back to the pool. So the first
product of a new, larger size pays the fresh arrays once, and nothing waits on a second
planning pass. The kernels run without the GIL, so products on several Python threads run at
once, each in a workspace of its own: the pool holds as many workspaces as products ever ran
at the same time (not one per thread that ever ran one), and none grows past
:data:`MAX_WORKSPACE_BYTES` (larger packings use fresh arrays every time, as before). Where the
packing lands changes no bit: the same values are written and read.
"""

from __future__ import annotations

import numpy as np

#: The most one workspace holds (a float32 2048^3 product packs 16 MiB of B, and 16 MiB more
#: when its A is packed too).
MAX_WORKSPACE_BYTES = 64 << 20
#: Start of a workspace: a cache line (the panels the micro-kernel streams start on one).
_ALIGN = 64


class Workspace:
    """Touched memory for one product's packing: its address (cache-line aligned) and size."""

    __slots__ = ("_memory", "address", "nbytes")

    def __init__(self) -> None:
        self._memory: np.ndarray | None = None
        self.address = 0
        self.nbytes = 0

    def elements(self, itemsize: int) -> int:
        """How many elements of ``itemsize`` bytes fit."""
        return self.nbytes // itemsize

    def grow(self, elements: int, itemsize: int) -> None:
        """Hold ``elements`` of ``itemsize`` bytes, unless it already does or that is more than
        :data:`MAX_WORKSPACE_BYTES`. The memory is touched now, so the product that next uses
        it does not fault it in."""
        nbytes = elements * itemsize
        if nbytes <= self.nbytes or nbytes > MAX_WORKSPACE_BYTES:
            return
        try:
            memory = np.empty(nbytes + _ALIGN, dtype=np.uint8)
        except MemoryError:
            return  # growing only saves time: the product already ran, keep what there is
        memory.fill(0)  # np.zeros may map pages it has not touched
        start = memory.ctypes.data
        self._memory, self.address, self.nbytes = memory, start + (-start) % _ALIGN, nbytes


class _WorkspacePool:
    """Free workspaces, the most recently given back (warmest in cache) taken first.

    No lock: ``list.pop`` and ``list.append`` are atomic (under the GIL, and under the
    per-object locks of a free-threaded build) and nothing else changes the list, so taking and
    giving back costs a product 0.15 us (0.40 us with a lock; a 128^3 product, where repops is
    closest to torch, takes 28 us), and a forked child has no lock to reset.
    """

    def __init__(self) -> None:
        self._free: list[Workspace] = []

    def take(self) -> Workspace:
        try:
            return self._free.pop()
        except IndexError:
            return Workspace()

    def give_back(self, ws: Workspace) -> None:
        self._free.append(ws)

    def sizes(self) -> list[int]:
        return [ws.nbytes for ws in self._free.copy()]

    def clear(self) -> None:
        self._free.clear()


_POOL = _WorkspacePool()

#: Take a workspace for one product (give it back with :func:`give_back_workspace`).
take_workspace = _POOL.take
give_back_workspace = _POOL.give_back


def pooled_workspace_bytes() -> list[int]:
    """Usable bytes of each workspace waiting in the pool (for tests and diagnostics)."""
    return _POOL.sizes()


def release_workspaces() -> None:
    """Let every waiting workspace go (products then start new ones)."""
    _POOL.clear()
