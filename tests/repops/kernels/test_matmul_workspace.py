"""The packing workspaces (repops/kernels/matmul_workspace.py): products that pack into one and
products that pack into fresh arrays give the reference's bits; a workspace grows to what a
product needed, never past its cap; products running at once on several threads each have
their own, and the pool holds no more workspaces than ever ran at once."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from repops.kernels import matmul as K
from repops.kernels import matmul_core as core
from repops.kernels import matmul_plan as plan_mod
from repops.kernels import matmul_workspace as W
from repops.reference import linalg as R

AssertSameBits = Callable[[torch.Tensor, torch.Tensor], None]  # conftest fixture type
Rand = Callable[..., torch.Tensor]  # conftest fixture type


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    """Each test starts (and leaves) with no workspace in the pool."""
    W.release_workspaces()
    yield
    W.release_workspaces()


def _workspace_bytes() -> int:
    """The size of the one workspace a single thread's products use (0: none yet)."""
    sizes = W.pooled_workspace_bytes()
    assert len(sizes) <= 1, sizes
    return sizes[0] if sizes else 0


def _column_major(t: torch.Tensor) -> torch.Tensor:
    return t.t().contiguous().t()


def test_a_product_grows_the_workspace_and_the_next_one_packs_into_it(
    rand: Rand, assert_same_bits: AssertSameBits, num_threads: Callable[[int], None],
) -> None:
    num_threads(2)
    # A strided in both dims is packed on every tile (ahead, at this size) and B of 560
    # columns is packed: the workspace holds both, A past B.
    a, b = rand(130, 700, seed=1), rand(700, 560, seed=2)
    wide = torch.zeros(260, 1400)
    wide[::2, ::2] = a
    strided = wide[::2, ::2]
    want = R.mm_reference(a, b)
    assert _workspace_bytes() == 0
    assert_same_bits(K.mm(strided, b), want)  # packed into fresh arrays
    grown = _workspace_bytes()
    assert grown >= 4 * 700 * 560  # at least packed B
    ws = W.take_workspace()
    address = ws.address
    W.give_back_workspace(ws)
    assert address % 64 == 0
    for _ in range(3):
        assert_same_bits(K.mm(strided, b), want)  # packed into the workspace
        assert_same_bits(K.mm(_column_major(a), b), want)
    assert _workspace_bytes() == grown
    ws = W.take_workspace()
    assert ws.address == address
    W.give_back_workspace(ws)


def test_the_packing_is_written_to_the_workspace_and_read_from_it(
    rand: Rand, assert_same_bits: AssertSameBits,
) -> None:
    # Filled with NaN, the workspace must be overwritten by the packing (else the product
    # would read NaN) and must hold the packing afterwards (else it was not used at all).
    a, b = rand(130, 700, seed=13), rand(700, 560, seed=14)
    assert a.shape[0] > plan_mod.DIRECT_B_SHORT_ROWS  # B is packed (on every ISA)
    want = R.mm_reference(a, b)
    K.mm(a, b)  # grows the workspace
    ws = W.take_workspace()
    memory = np.ctypeslib.as_array(
        (ctypes.c_float * ws.elements(4)).from_address(ws.address))
    memory.fill(np.nan)
    W.give_back_workspace(ws)
    assert_same_bits(K.mm(a, b), want)
    assert not np.isnan(memory).all()
    assert np.isin(b.numpy(), memory).all()  # every value of B went through the workspace


def test_a_smaller_product_reuses_the_workspace_and_a_larger_one_grows_it(
    rand: Rand, assert_same_bits: AssertSameBits,
) -> None:
    small = (rand(40, 300, seed=3), rand(300, 200, seed=4))
    large = (rand(64, 900, seed=5), rand(900, 400, seed=6))
    K.mm(*large)
    size = _workspace_bytes()
    assert_same_bits(K.mm(*small), R.mm_reference(*small))
    assert _workspace_bytes() == size  # the smaller packing fits: no new memory
    W.release_workspaces()
    K.mm(*small)
    smaller = _workspace_bytes()
    assert 0 < smaller < size
    assert_same_bits(K.mm(*large), R.mm_reference(*large))
    assert _workspace_bytes() == size


def test_float64_products_count_the_workspace_in_their_own_elements(
    assert_same_bits: AssertSameBits,
) -> None:
    # 130 rows: B is packed (see the first test), 700 x 560 of them. (The float64 reference
    # is exact-rational and far too slow at this size: the packing into fresh arrays, which
    # the reference tests cover at every size, is the judge here.)
    gen = torch.Generator().manual_seed(7)
    a = torch.randn(130, 700, dtype=torch.float64, generator=gen)
    b = torch.randn(700, 560, dtype=torch.float64, generator=gen)
    K.mm(a.float(), b.float())  # a float32 workspace: about half the bytes float64 needs
    assert _workspace_bytes() < 8 * 700 * 560
    fresh = K.mm(a, b)
    assert _workspace_bytes() >= 8 * 700 * 560
    for _ in range(2):
        assert_same_bits(K.mm(a, b), fresh)
    torch.testing.assert_close(fresh, a @ b)


def test_a_packing_over_the_cap_uses_fresh_arrays_and_leaves_the_workspace_alone(
    rand: Rand, assert_same_bits: AssertSameBits, monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = rand(40, 300, seed=9), rand(300, 200, seed=10)
    monkeypatch.setattr(W, "MAX_WORKSPACE_BYTES", 1024)  # under even B's last panel: 300 x NR
    for _ in range(2):
        assert_same_bits(K.mm(a, b), R.mm_reference(a, b))
        assert _workspace_bytes() == 0


def test_products_running_at_once_each_pack_into_their_own_workspace(
    rand: Rand, assert_same_bits: AssertSameBits, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # More rows than matmul_plan.DIRECT_B_SHORT_ROWS: every B is packed, on every ISA.
    rows = plan_mod.DIRECT_B_SHORT_ROWS + 2
    pairs = [(rand(rows, 500, seed=20 + i), rand(500, 300 + 40 * i, seed=30 + i))
             for i in range(3)]
    wants = [R.mm_reference(a, b) for a, b in pairs]
    results: dict[int, list[torch.Tensor]] = {}
    all_hold = threading.Barrier(len(pairs))
    first = threading.local()
    take = W.take_workspace

    def take_and_meet() -> W.Workspace:
        """Each thread's first product waits, workspace in hand, until all three hold one."""
        ws = take()
        if not getattr(first, "met", False):
            first.met = True
            all_hold.wait(timeout=60)
        return ws

    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            results[i] = [K.mm(*pairs[i]) for _ in range(20)]  # products run without the GIL
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
            all_hold.abort()

    # The serial body on every thread: what is tested is the workspaces, not whether this
    # numba threading layer runs parallel regions from several threads at once.
    monkeypatch.setattr(core, "SERIAL_BELOW", 1 << 62)
    monkeypatch.setattr(core, "take_workspace", take_and_meet)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    assert not errors, errors
    for i, want in enumerate(wants):
        assert len(results[i]) == 20
        for got in results[i]:
            assert_same_bits(got, want)
    assert len(W.pooled_workspace_bytes()) == len(pairs)


def test_threads_that_run_one_after_another_share_one_workspace(
    rand: Rand, assert_same_bits: AssertSameBits,
) -> None:
    a, b = rand(96, 500, seed=40), rand(500, 300, seed=41)
    want = R.mm_reference(a, b)
    got: list[torch.Tensor] = []
    for _ in range(6):
        t = threading.Thread(target=lambda: got.append(K.mm(a, b)))
        t.start()
        t.join()
    for g in got:
        assert_same_bits(g, want)
    assert len(W.pooled_workspace_bytes()) == 1  # not one per thread that ever ran a product
