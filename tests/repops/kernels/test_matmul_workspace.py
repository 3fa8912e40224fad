"""The packing workspace (repops/kernels/matmul_workspace.py): products that pack into it and
products that pack into fresh arrays give the reference's bits; it grows to what a product
needed, never past its cap, and each Python thread has its own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import torch

from repops.kernels import matmul as K
from repops.kernels import matmul_workspace as W
from repops.reference import linalg as R

AssertSameBits = Callable[[torch.Tensor, torch.Tensor], None]  # conftest fixture type
Rand = Callable[..., torch.Tensor]  # conftest fixture type


@pytest.fixture(autouse=True)
def fresh_workspace() -> Iterator[None]:
    """Each test starts (and leaves this thread) without a workspace."""
    W.release_workspace()
    yield
    W.release_workspace()


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
    assert W.workspace_bytes() == 0
    assert_same_bits(K.mm(strided, b), want)  # packed into fresh arrays
    grown = W.workspace_bytes()
    assert grown >= 4 * 700 * 560  # at least packed B
    address, _ = W.workspace(4)
    assert address % 64 == 0
    for _ in range(3):
        assert_same_bits(K.mm(strided, b), want)  # packed into the workspace
        assert_same_bits(K.mm(_column_major(a), b), want)
    assert W.workspace_bytes() == grown
    assert W.workspace(4)[0] == address


def test_a_smaller_product_reuses_the_workspace_and_a_larger_one_grows_it(
    rand: Rand, assert_same_bits: AssertSameBits,
) -> None:
    small = (rand(40, 300, seed=3), rand(300, 200, seed=4))
    large = (rand(64, 900, seed=5), rand(900, 400, seed=6))
    K.mm(*large)
    size = W.workspace_bytes()
    assert_same_bits(K.mm(*small), R.mm_reference(*small))
    assert W.workspace_bytes() == size  # the smaller packing fits: no new memory
    W.release_workspace()
    K.mm(*small)
    smaller = W.workspace_bytes()
    assert 0 < smaller < size
    assert_same_bits(K.mm(*large), R.mm_reference(*large))
    assert W.workspace_bytes() == size


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
    assert W.workspace_bytes() < 8 * 700 * 560
    fresh = K.mm(a, b)
    assert W.workspace_bytes() >= 8 * 700 * 560
    for _ in range(2):
        assert_same_bits(K.mm(a, b), fresh)
    torch.testing.assert_close(fresh, a @ b)


def test_a_packing_over_the_cap_uses_fresh_arrays_and_leaves_the_workspace_alone(
    rand: Rand, assert_same_bits: AssertSameBits, monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = rand(40, 300, seed=9), rand(300, 200, seed=10)
    monkeypatch.setattr(W, "MAX_WORKSPACE_BYTES", 1024)  # its ragged B panel alone: 300 x NR
    for _ in range(2):
        assert_same_bits(K.mm(a, b), R.mm_reference(a, b))
        assert W.workspace_bytes() == 0


def test_each_thread_packs_into_its_own_workspace(
    rand: Rand, assert_same_bits: AssertSameBits,
) -> None:
    pairs = [(rand(96, 500, seed=20 + i), rand(500, 300 + 40 * i, seed=30 + i)) for i in range(3)]
    wants = [R.mm_reference(a, b) for a, b in pairs]
    results: dict[int, list[torch.Tensor]] = {}
    addresses: dict[int, int] = {}
    start = threading.Barrier(len(pairs))

    def worker(i: int) -> None:
        a, b = pairs[i]
        start.wait()
        results[i] = [K.mm(a, b) for _ in range(20)]  # products run without the GIL
        addresses[i] = W.workspace(4)[0]
        W.release_workspace()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, want in enumerate(wants):
        for got in results[i]:
            assert_same_bits(got, want)
    assert len(set(addresses.values())) == len(pairs) and 0 not in addresses.values()
    assert W.workspace_bytes() == 0  # this thread's is untouched by the others'
