"""The packing workspace of the matrix-product core: one per calling thread, reused.

Why: a product packs B (and large ones A) into fresh buffers of a few megabytes, and glibc
gives memory that size back to the system when it is freed (``munmap`` above its mmap
threshold; below it, trimming the heap's top once more than twice that threshold is free:
packed A and B together are), so every product of a training step faulted its packing
buffers in again, page by page: the weight gradient of the attention projection
(256 x 2048 x 256 on two threads) took about a thousand minor faults a call on a 2-core
Zen 3, 4.7 ms against 1.8 ms without them. Memory held here
is mapped and touched once; a step runs the same products every step, so after the first step
no product faults its packing in.

How: the compiled body packs into the workspace when the packing fits and into fresh arrays
when it does not, and returns how many elements it needed; the caller grows the workspace to
that size for the next product. So the first product of a new, larger size pays the fresh
arrays once, and nothing waits on a second planning pass. One workspace per Python thread
(the kernels run without the GIL, so two threads may run products at once); a workspace never
grows past :data:`MAX_WORKSPACE_BYTES` (larger packings use fresh arrays every time, as
before). Where the packing lands changes no bit: the same values are written and read.
"""

from __future__ import annotations

import threading

import numpy as np

#: The most a thread's workspace holds (a 2048 x 2048 float32 B and its A: 20 MiB).
MAX_WORKSPACE_BYTES = 64 << 20
#: Start of the workspace: a cache line (the panels the micro-kernel streams start on one).
_ALIGN = 64


class _ThreadWorkspace(threading.local):
    """This thread's workspace: its memory, the aligned address and the usable bytes."""

    def __init__(self) -> None:
        self.memory: np.ndarray | None = None
        self.address = 0
        self.nbytes = 0


_WORKSPACE = _ThreadWorkspace()


def workspace(itemsize: int) -> tuple[int, int]:
    """(address, elements of ``itemsize`` bytes) of the calling thread's workspace."""
    ws = _WORKSPACE
    return ws.address, ws.nbytes // itemsize


def grow_workspace(elements: int, itemsize: int) -> None:
    """Make the calling thread's workspace hold ``elements`` of ``itemsize`` bytes, unless it
    already does or that is more than :data:`MAX_WORKSPACE_BYTES`. The memory is touched now,
    so the product that next uses it does not fault it in."""
    nbytes = elements * itemsize
    ws = _WORKSPACE
    if nbytes <= ws.nbytes or nbytes > MAX_WORKSPACE_BYTES:
        return
    memory = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    memory.fill(0)  # np.zeros may map pages it has not touched
    start = memory.ctypes.data
    ws.memory, ws.address, ws.nbytes = memory, start + (-start) % _ALIGN, nbytes


def workspace_bytes() -> int:
    """Usable bytes of the calling thread's workspace (for tests and diagnostics)."""
    return int(_WORKSPACE.nbytes)


def release_workspace() -> None:
    """Let the calling thread's workspace go (the next products start a new one)."""
    ws = _WORKSPACE
    ws.memory, ws.address, ws.nbytes = None, 0, 0
