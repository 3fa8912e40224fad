"""Reused output buffers: memory comes back only when nothing uses it, and only then."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from repops.kernels import _buffers
from repops.kernels._buffers import MIN_BYTES, pooled_bytes, reusable_empty

SHAPE = (MIN_BYTES // 4 + 7,)  # just over the threshold, in float32


@pytest.fixture(autouse=True)
def empty_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh pool per test (the holders find it through their class)."""
    pool = _buffers._SlabPool()
    monkeypatch.setattr(_buffers, "_POOL", pool)
    monkeypatch.setattr(_buffers._SlabHolder, "_pool", pool)


def test_a_freed_output_is_handed_out_again() -> None:
    a = reusable_empty(SHAPE, np.float32)
    address = a.ctypes.data
    assert pooled_bytes() == 0
    del a
    assert pooled_bytes() == SHAPE[0] * 4
    b = reusable_empty(SHAPE, np.float32)
    assert b.ctypes.data == address and pooled_bytes() == 0
    assert b.shape == SHAPE and b.dtype == np.float32 and b.flags.c_contiguous
    assert b.flags.writeable


def test_memory_in_use_by_a_view_or_a_tensor_is_never_handed_out() -> None:
    a = reusable_empty(SHAPE, np.float32)
    a[:] = 1.5
    tensor = torch.from_numpy(a[7:].reshape(-1, 2))  # a view of a view, then a tensor
    del a
    assert pooled_bytes() == 0
    b = reusable_empty(SHAPE, np.float32)  # must be other memory
    b[:] = -3.0
    assert bool((tensor == 1.5).all())
    view = tensor.view(-1)[:5]
    del tensor
    assert pooled_bytes() == 0
    del view
    assert pooled_bytes() == SHAPE[0] * 4


def test_small_outputs_and_other_sizes_are_not_pooled() -> None:
    small = reusable_empty((100,), np.float32)
    del small
    assert pooled_bytes() == 0
    a = reusable_empty(SHAPE, np.float32)
    address = a.ctypes.data
    del a
    other = reusable_empty((SHAPE[0] + 1,), np.float32)
    assert other.ctypes.data != address and pooled_bytes() == SHAPE[0] * 4


def test_the_pool_lets_memory_go_beyond_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_buffers, "MAX_POOLED_BYTES", SHAPE[0] * 4 + 1)
    a, b = reusable_empty(SHAPE, np.float32), reusable_empty(SHAPE, np.float32)
    del a, b
    assert pooled_bytes() == SHAPE[0] * 4


def test_threads_never_share_live_memory() -> None:
    kept: list[list[np.ndarray]] = []
    lock = threading.Lock()

    def churn(seed: int) -> None:
        held: list[np.ndarray] = []
        for i in range(200):
            arr = reusable_empty(SHAPE, np.float32)
            arr[:] = seed
            held.append(arr)
            if i % 3 == 2:
                held.pop(0)  # freed: the pool may hand it to any thread
            assert all(h[0] == seed and h[-1] == seed for h in held)
        with lock:
            kept.append(held)  # alive until every thread is done

    threads = [threading.Thread(target=churn, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [h.ctypes.data for held in kept for h in held]
    assert len(kept) == 4 and len(flat) == len(set(flat))
    for seed, held in enumerate(sorted(kept, key=lambda h: float(h[0][0]))):
        assert all(bool((h == seed).all()) for h in held)


def test_a_forked_child_starts_with_an_empty_pool() -> None:
    import multiprocessing

    a = reusable_empty(SHAPE, np.float32)
    del a
    assert _buffers._POOL.pooled_bytes() > 0
    _buffers._POOL.reset_after_fork()  # what the fork hook runs in the child
    assert _buffers._POOL.pooled_bytes() == 0
    b = reusable_empty(SHAPE, np.float32)
    b[:] = 2.0
    del b
    assert _buffers._POOL.pooled_bytes() == SHAPE[0] * 4
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as workers:  # the registered hook in a real child
        assert workers.apply(_buffers.pooled_bytes) == 0


def test_a_full_pool_lets_the_least_recently_returned_sizes_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_buffers, "MAX_POOLED_BYTES", 3 * MIN_BYTES + 4 * 1024)
    steady_bytes = SHAPE[0] * 4

    def served_from_the_pool() -> bool:
        before = pooled_bytes()
        arr = reusable_empty(SHAPE, np.float32)
        served = pooled_bytes() == before - steady_bytes
        del arr  # back into the pool, the most recently returned
        return served

    stale = [reusable_empty((MIN_BYTES // 4 + k,), np.float32) for k in range(1, 4)]
    while stale:  # three one-off sizes fill the pool, returned smallest first
        stale.pop(0)
    assert pooled_bytes() == 3 * MIN_BYTES + 24
    steady = reusable_empty(SHAPE, np.float32)
    del steady  # the oldest one-off size makes room
    assert pooled_bytes() == 2 * MIN_BYTES + 20 + steady_bytes
    for _ in range(4):  # more one-off sizes push out the oldest, never the size in use
        assert served_from_the_pool()
        extra = reusable_empty((MIN_BYTES // 4 + 100,), np.float32)
        del extra
        assert pooled_bytes() <= _buffers.MAX_POOLED_BYTES
    assert served_from_the_pool()


def test_a_slab_larger_than_the_pool_is_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_buffers, "MAX_POOLED_BYTES", MIN_BYTES)
    big = reusable_empty(SHAPE, np.float32)
    del big
    assert pooled_bytes() == 0


def test_no_kernel_reads_its_output_before_writing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pooled memory holds an earlier result: every pooled kernel must give the same bits on
    memory filled with garbage (0xFF bytes are NaNs in binary32) as on fresh memory."""
    import torch.nn.functional as F

    import repops

    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 640, generator=g)
    w, b = torch.randn(640, generator=g), torch.randn(640, generator=g)
    q, k, v = (torch.randn(4, 4, 256, 64, generator=g, requires_grad=True) for _ in range(3))

    def ops() -> list[torch.Tensor]:
        with repops.reproducible():
            xs = x.clone().requires_grad_()
            y = F.gelu(xs)
            s = torch.softmax(y, -1)
            n = F.layer_norm(s, (640,), w, b)
            n.sum().backward()
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            a.sum().backward()
            outs = [y, s, n, xs.grad, a, torch.add(x, y, alpha=0.5), torch.log_softmax(x, 0)]
            grads = [t.grad.clone() for t in (q, k, v)]
            for t in (q, k, v):
                t.grad = None
        return [o.detach() for o in outs] + grads

    clean = ops()
    real_take = _buffers._SlabPool.take

    def poisoned_take(self: _buffers._SlabPool, nbytes: int) -> np.ndarray:
        slab = real_take(self, nbytes)
        slab.fill(0xFF)
        return slab

    monkeypatch.setattr(_buffers._SlabPool, "take", poisoned_take)
    dirty = ops()
    assert all(torch.equal(c.view(torch.int32), d.view(torch.int32))
               for c, d in zip(clean, dirty, strict=True))
