"""Matrix products (repops/kernels/matmul.py) against the spec/linalg.md §2 reference, bit for bit.

Also: thread count, batch size / row position and memory layout change no bit; results are
close to torch; bad inputs raise clear errors.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repops.errors import UnsupportedInputError
from repops.kernels import matmul as K
from repops.kernels import matmul_core as core
from repops.kernels import matmul_plan as plan_mod
from repops.kernels._gemm_tile import tile_shape
from repops.kernels._target import numba_target
from repops.kernels.matmul import MatmulShapeError
from repops.reference import linalg as R

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]  # conftest fixture type
AssertSameBits = Callable[[torch.Tensor, torch.Tensor], None]  # conftest fixture type
Rand = Callable[..., torch.Tensor]  # conftest fixture type

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
BothPaths = Callable[[Callable[[], torch.Tensor]], list[torch.Tensor]]


@pytest.fixture
def both_paths(monkeypatch: pytest.MonkeyPatch) -> BothPaths:
    """``both_paths(fn)``: ``[fn()]`` with every product on the serial path, then on the
    parallel path (the size threshold between them changes no bit; tests prove it)."""

    def run(fn: Callable[[], torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for threshold in (1 << 62, 0):
            with monkeypatch.context() as mp:
                mp.setattr(core, "SERIAL_BELOW", threshold)
                out.append(fn())
        return out

    return run


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("m", "k", "n"), [(1, 1, 1), (3, 17, 5), (17, 33, 65), (65, 3, 70), (100, 520, 130)]
)
def test_mm_matches_reference(
    dtype: torch.dtype, m: int, k: int, n: int, rand: Rand, assert_same_bits: AssertSameBits
) -> None:
    a, b = rand(m, k, dtype=dtype, seed=1), rand(k, n, dtype=dtype, seed=2)
    assert_same_bits(K.mm(a, b), R.mm_reference(a, b))


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 20), k=st.integers(0, 40), n=st.integers(1, 80),
    dtype=st.sampled_from(DTYPES), transpose_a=st.booleans(), seed=st.integers(0, 2**16),
)
def test_mm_random_shapes_match_reference(
    m: int,
    k: int,
    n: int,
    dtype: torch.dtype,
    transpose_a: bool,
    seed: int,
    rand: Rand,
    assert_same_bits: AssertSameBits,
) -> None:
    a = rand(k, m, dtype=dtype, seed=seed).t() if transpose_a else rand(m, k, dtype=dtype,
                                                                        seed=seed)
    b = rand(k, n, dtype=dtype, seed=seed + 1)
    assert_same_bits(K.mm(a, b), R.mm_reference(a, b))


@pytest.mark.parametrize(("m", "k", "n"), [(3, 5, 4), (2, 300, 3), (40, 300, 50), (50, 20, 6)])
def test_mm_float64_matches_reference(
    m: int, k: int, n: int, rand: Rand, assert_same_bits: AssertSameBits
) -> None:
    # K = 300 crosses a k-block: binary64 accumulators are parked and resumed too. binary64
    # tiles have half the lanes of binary32 ones (wide and narrow); the chains are the same.
    a, b = rand(m, k, dtype=torch.float64, seed=3), rand(k, n, dtype=torch.float64, seed=4)
    want = R.mm_reference(a, b)
    assert_same_bits(K.mm(a, b), want)
    assert_same_bits(K.mm(a.t().contiguous().t(), b), want)


def test_mm_long_k_crosses_k_blocks(rand: Rand, assert_same_bits: AssertSameBits) -> None:
    # K > KC: each element's accumulator is parked in C and resumed; bits must equal one chain.
    a, b = rand(5, 300, seed=5), rand(300, 7, seed=6)
    assert_same_bits(K.mm(a, b), R.mm_reference(a, b))


def test_narrow_products_on_both_paths_match_reference(
    rand: Rand, assert_same_bits: AssertSameBits, both_paths: BothPaths
) -> None:
    # N <= 16 uses the narrow micro-tile.
    a, b = rand(500, 170, seed=40), rand(170, 13, seed=41)
    want = R.mm_reference(a, b)
    for got in both_paths(lambda: K.mm(a, b)):
        assert_same_bits(got, want)
    assert_same_bits(K.mm(a[:7], b), want[:7])


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same logical matrix in another memory layout (C3: no bit may change)."""
    if layout == "transposed":
        return t.t().contiguous().t()
    if layout == "strided":  # neither dim contiguous
        big = torch.zeros(t.shape[0] * 2, t.shape[1] * 3, dtype=t.dtype)
        big[::2, ::3] = t
        return big[::2, ::3]
    return t


@pytest.mark.parametrize("layout_a", ["rows", "transposed", "strided"])
@pytest.mark.parametrize("layout_b", ["rows", "transposed", "strided"])
@pytest.mark.parametrize(
    ("m", "k", "n"),
    [(20, 64, 100), (97, 30, 45), (61, 700, 33), (130, 170, 9), (100, 900, 40)],
    ids=["few-rows", "ragged", "k-blocks", "narrow", "long-k-packed"],
)
def test_every_path_of_the_core_matches_reference(
    layout_a: str, layout_b: str, m: int, k: int, n: int, rand: Rand,
    assert_same_bits: AssertSameBits, both_paths: BothPaths,
) -> None:
    # A read in place (rows or columns contiguous) or packed (strided); B packed or read in
    # place (up to 128 rows with a short K, or few rows; contiguous rows) with a packed ragged
    # last panel; K over several
    # k-blocks (parked accumulators); wide and narrow tiles; serial and parallel.
    a, b = rand(m, k, seed=m), rand(k, n, seed=n)
    want = R.mm_reference(a, b)
    for got in both_paths(lambda: K.mm(_layout(a, layout_a), _layout(b, layout_b))):
        assert_same_bits(got, want)


def test_batched_products_on_every_path_match_reference(
    rand: Rand, assert_same_bits: AssertSameBits
) -> None:
    # Attention-like batches: each batch entry has its own panels and offsets.
    a, b = rand(6, 37, 24, seed=34), rand(6, 24, 50, seed=35)
    assert_same_bits(K.bmm(a, b), R.bmm_reference(a, b))
    at = a.transpose(1, 2).contiguous().transpose(1, 2)
    bt = b.transpose(1, 2).contiguous().transpose(1, 2)
    assert_same_bits(K.bmm(at, bt), R.bmm_reference(a, b))
    big, wide = rand(6, 300, 40, seed=36), rand(6, 40, 70, seed=37)  # B packed per entry
    assert_same_bits(K.bmm(big, wide), R.bmm_reference(big, wide))


def test_reference_detects_a_different_order(rand: Rand, same_bits: SameBits) -> None:
    # The bit-exact comparison can fail: reversing k gives other bits for this data.
    a, b = rand(4, 64, seed=7), rand(64, 4, seed=8)
    rev = R.mm_reference(a.flip(1), b.flip(0))
    assert not same_bits(K.mm(a, b), rev)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_addmm_matches_reference(
    dtype: torch.dtype, rand: Rand, assert_same_bits: AssertSameBits
) -> None:
    a, b = rand(7, 9, dtype=dtype, seed=9), rand(9, 33, dtype=dtype, seed=10)
    for bias in (rand(33, dtype=dtype, seed=11), rand(7, 33, dtype=dtype, seed=12)):
        for beta, alpha in ((1, 1), (0.5, 2.0), (0.3, -1.7)):
            got = K.addmm(bias, a, b, beta=beta, alpha=alpha)
            assert_same_bits(got, R.addmm_reference(bias, a, b, beta, alpha))


@pytest.mark.parametrize(("m", "k", "n"), [(150, 80, 200), (40, 30, 1), (9, 0, 5)],
                         ids=["parallel", "one-column", "empty-k"])
def test_addmm_epilogue_on_every_path_matches_reference(
    m: int, k: int, n: int, rand: Rand, assert_same_bits: AssertSameBits, both_paths: BothPaths
) -> None:
    # The bias is added tile by tile inside the core (or after the one-chain-per-row path);
    # row, column and full biases, bf16 inputs, and a K = 0 product (-0.0 after alpha < 0).
    for dtype in (torch.float32, torch.bfloat16):
        a, b = rand(m, k, dtype=dtype, seed=38), rand(k, n, dtype=dtype, seed=39)
        for bias in (rand(n, dtype=dtype, seed=40), rand(m, 1, dtype=dtype, seed=41),
                     rand(m, n, dtype=dtype, seed=42).t().contiguous().t()):
            for beta, alpha in ((1, 1), (0.5, -2.0), (0, 3.0)):
                want = R.addmm_reference(bias, a, b, beta, alpha)
                at = a.t().contiguous().t()
                for got in both_paths(lambda: K.addmm(bias, at, b, beta=beta, alpha=alpha)):  # noqa: B023
                    assert_same_bits(got, want)


def test_addmm_beta_zero_ignores_nan_bias(rand: Rand, assert_same_bits: AssertSameBits) -> None:
    a, b = rand(3, 4, seed=13), rand(4, 5, seed=14)
    bias = torch.full((5,), float("nan"))
    got = K.addmm(bias, a, b, beta=0)
    assert not torch.isnan(got).any()
    assert_same_bits(got, K.mm(a, b))
    assert torch.isnan(K.addmm(bias, a, b, beta=1)).all()


def test_bmm_and_baddbmm_match_reference(rand: Rand, assert_same_bits: AssertSameBits) -> None:
    a, b = rand(3, 5, 17, seed=15), rand(3, 17, 9, seed=16)
    assert_same_bits(K.bmm(a, b), R.bmm_reference(a, b))
    bias = rand(3, 1, 9, seed=17)
    got = K.baddbmm(bias, a, b, beta=0.25, alpha=3.0)
    assert_same_bits(got, R.baddbmm_reference(bias, a, b, 0.25, 3.0))


def test_mv_and_dot_match_reference(rand: Rand, assert_same_bits: AssertSameBits) -> None:
    a, v = rand(9, 33, seed=18), rand(33, seed=19)
    assert_same_bits(K.mv(a, v), R.mv_reference(a, v))
    got = K.dot(a[0], v)
    assert got.shape == () and got.dtype == torch.float32
    assert_same_bits(got, R.dot_reference(a[0], v))
    # mv is mm with one column: same chain, same bits.
    assert_same_bits(K.mv(a, v), K.mm(a, v[:, None])[:, 0])


def test_empty_inner_dimension_gives_positive_zero(assert_same_bits: AssertSameBits) -> None:
    out = K.mm(torch.empty(3, 0), torch.empty(0, 4))
    assert_same_bits(out, torch.zeros(3, 4))


def test_thread_count_changes_no_bit(
    rand: Rand, assert_same_bits: AssertSameBits, num_threads: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(core, "SERIAL_BELOW", 0)  # the parallel path at any size
    a, b = rand(130, 170, seed=20), rand(170, 140, seed=21)
    num_threads(1)
    one = K.mm(a, b)
    num_threads(2)
    two = K.mm(a, b)
    assert_same_bits(one, two)
    monkeypatch.undo()
    # The small-product serial path gives the bits of the parallel path, element by element.
    assert_same_bits(K.mm(a[:3, :20], b[:20, :5]), R.mm_reference(a[:3, :20], b[:20, :5]))


def _plan(m: int, kk: int, n: int, threads: int) -> np.ndarray:
    """The blocking :func:`product_into` gives a float32 (1, m, kk, n) product on ``threads``."""
    dtype = np.dtype(np.float32)
    plan = plan_mod.new_plan(1, m, kk, n, 0, 0, kk, 1, 0, 0, n, 1, 0, 0, 0, 0, 0, 0, threads)
    plan_mod.block_plan(core.product_kind(n, dtype), plan, core.unit_scalars(dtype))
    return plan


def _tiles_of_busiest_thread(plan: np.ndarray, threads: int) -> tuple[int, int]:
    """(tiles of the busiest thread, tiles in all) of a one-batch float32 plan."""
    m, n = plan[plan_mod._M], plan[plan_mod._N]
    mr, vectors, lanes = tile_shape(core.product_kind(n, np.dtype(np.float32)), numba_target(),
                                    32)
    nr = vectors * lanes
    mpan, npan = -(-m // mr), -(-n // nr)
    busiest = plan_mod.busiest_load(plan[plan_mod._NIB], plan[plan_mod._NJB],
                                    plan[plan_mod._MB] // mr, plan[plan_mod._PB], mpan, npan,
                                    threads)
    return busiest, mpan * npan


def test_small_products_give_each_thread_its_own_columns_when_that_balances_better(
    rand: Rand, assert_same_bits: AssertSameBits, num_threads: Callable[[int], None],
) -> None:
    # 128^3 on two threads has an even number of B panels on every ISA (8 of 16 columns on
    # AVX2, 4 of 32 on AVX-512): the busiest thread gets exactly half the tiles. With the
    # 6-row AVX2 tile (22 row panels, the last one ragged) only the column split gives that;
    # the row split would give one thread 12 of the 22 row panels.
    plan = _plan(128, 128, 128, 2)
    busiest, tiles = _tiles_of_busiest_thread(plan, 2)
    assert busiest * 2 == tiles
    if tiles == 22 * 8:  # the AVX2 tile: only the column split balances
        assert plan[plan_mod._NIB] == 1 and plan[plan_mod._NJB] == 2
    assert _plan(128, 128, 128, 1)[plan_mod._NJB] == 1  # one thread: one item, no balance
    assert _plan(4096, 256, 256, 2)[plan_mod._NIB] > 1  # many row blocks: rows stay split
    a, b = rand(128, 128, seed=60), rand(128, 128, seed=61)
    num_threads(2)
    two = K.mm(a, b)
    num_threads(1)
    assert_same_bits(two, K.mm(a, b))
    assert_same_bits(two, R.mm_reference(a, b))


def test_busiest_load_follows_the_split_prange_makes(num_threads: Callable[[int], None]) -> None:
    # The balance model (items in order, the first items % threads threads one longer) is
    # what numba's scheduler does; a mismatch would only cost speed, but the test says so.
    @numba.njit(parallel=True)
    def owners(items: int) -> np.ndarray:  # pragma: no cover - compiled
        out = np.zeros(items, dtype=np.int64)
        for w in numba.prange(items):
            out[w] = numba.get_thread_id()
        return out

    num_threads(2)
    for nib, njb in [(8, 2), (5, 1), (1, 3), (7, 3)]:
        per, pb, mpan, npan = 3, 4, 3 * nib - 1, 4 * njb - 2
        tiles = [
            (min(mpan, (w // njb + 1) * per) - w // njb * per)
            * (min(npan, (w % njb + 1) * pb) - w % njb * pb)
            for w in range(nib * njb)
        ]
        owner = owners(nib * njb)
        busiest = max(sum(t for t, o in zip(tiles, owner, strict=True) if o == th)
                      for th in range(2))
        assert plan_mod.busiest_load(nib, njb, per, pb, mpan, npan, 2) == busiest


def _a_plan(m: int, kk: int, n: int, sa1: int, sa2: int, threads: int, nb: int = 1) -> int:
    """How the float32 (nb, m, kk, n) product with A's strides (sa1, sa2) reads A."""
    dtype = np.dtype(np.float32)
    plan = plan_mod.new_plan(nb, m, kk, n, 0, 0, sa1, sa2, 0, 0, n, 1, 0, 0, 0, 0, 0, 0,
                             threads)
    plan_mod.block_plan(core.product_kind(n, dtype), plan, core.unit_scalars(dtype))
    return int(plan[plan_mod._PACK_A])


def test_a_packed_ahead_or_per_item_matches_reference(
    rand: Rand, assert_same_bits: AssertSameBits, num_threads: Callable[[int], None],
) -> None:
    # K = 700 and N = 560 give two B blocks per row block on every tile, so A is packed ahead
    # when packed at all: on one thread, and on two from A_PACK_AHEAD_MIN multiply-adds on
    # (per item below that). A strided in both dims is packed on every tile; a column-major
    # A with a long k stride only under the 6-row float32 tile (the group copy, one group of
    # row panels per thread, the last one ragged), and read in place under the 12-row one.
    kk, n = 700, 560
    big, small = 130, 37  # rows: 51M and 14.5M multiply-adds; ragged on 6- and 12-row tiles
    assert small * kk * n < plan_mod.A_PACK_AHEAD_MIN <= big * kk * n
    assert small * kk * n >= core.SERIAL_BELOW  # two threads really run
    assert _a_plan(big, kk, n, 2 * kk, 2, 2) == plan_mod.A_PACKED_AHEAD
    assert _a_plan(small, kk, n, 2 * kk, 2, 2) == plan_mod.A_PACKED_PER_ITEM
    assert _a_plan(small, kk, n, 2 * kk, 2, 1) == plan_mod.A_PACKED_AHEAD
    assert _a_plan(big, kk, n, kk, 1, 2) == plan_mod.A_IN_PLACE
    rows = tile_shape(core.product_kind(n, np.dtype(np.float32)), numba_target(), 32)[0]
    assert _a_plan(big, kk, n, 1, big, 2) == (
        plan_mod.A_PACKED_AHEAD if rows == 6 else plan_mod.A_IN_PLACE)
    a, b = rand(big, kk, seed=70), rand(kk, n, seed=71)
    want = R.mm_reference(a, b)
    strided = _layout(a, "strided")
    column_major = a.t().contiguous().t()
    for threads in (1, 2):
        num_threads(threads)
        assert_same_bits(K.mm(strided, b), want)
        assert_same_bits(K.mm(column_major, b), want)
        assert_same_bits(K.mm(strided[:small], b), want[:small])
        assert_same_bits(K.mm(column_major[:small], b), want[:small])
    # Batched, strided in both dims (ahead on every tile) and column-major: each entry's
    # panels at their own offsets.
    ab, bb = rand(2, 60, kk, seed=72), rand(2, kk, n, seed=73)
    want_b = R.bmm_reference(ab, bb)
    wide = torch.zeros(2, 120, 2 * kk)
    wide[:, ::2, ::2] = ab
    assert_same_bits(K.bmm(wide[:, ::2, ::2], bb), want_b)
    assert_same_bits(K.bmm(ab.transpose(1, 2).contiguous().transpose(1, 2), bb), want_b)


def test_row_independent_of_batch_size_and_position(
    rand: Rand, assert_same_bits: AssertSameBits
) -> None:
    # The full product on the parallel path; one row, or seven, on the serial one.
    w = rand(120, 100, seed=22)
    x = rand(200, 120, seed=23)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "SERIAL_BELOW", 0)
        full = K.mm(x, w)
    assert_same_bits(K.mm(x[5:6], w), full[5:6])
    assert_same_bits(K.mm(x[:7], w), full[:7])
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    assert_same_bits(K.mm(x[perm], w), full[perm])
    # bmm: one batch entry alone equals its slice of the batched product.
    xb, wb = rand(4, 7, 33, seed=24), rand(4, 33, 9, seed=25)
    assert_same_bits(K.bmm(xb[2:3], wb[2:3]), K.bmm(xb, wb)[2:3])


def test_layout_changes_no_bit(rand: Rand, assert_same_bits: AssertSameBits) -> None:
    a, b = rand(17, 33, seed=26), rand(33, 20, seed=27)
    ref = K.mm(a, b)
    assert_same_bits(K.mm(a.t().contiguous().t(), b), ref)  # column-major a
    assert_same_bits(K.mm(a, b.t().contiguous().t()), ref)  # column-major b (linear backward)
    big = rand(34, 66, seed=28)
    big[::2, ::2] = a
    assert_same_bits(K.mm(big[::2, ::2], b), ref)  # strided slice


def test_close_to_torch(rand: Rand) -> None:
    a, b = rand(40, 200, seed=29), rand(200, 50, seed=30)
    # C5 is one correctly rounded chain: within a few ulps * K of the exact product.
    torch.testing.assert_close(K.mm(a, b), a @ b, rtol=1e-5, atol=1e-4)
    bias = rand(50, seed=31)
    torch.testing.assert_close(K.addmm(bias, a, b), torch.addmm(bias, a, b), rtol=1e-5, atol=1e-4)


def test_bad_inputs_raise_clear_errors(rand: Rand) -> None:
    a = rand(3, 4)
    with pytest.raises(MatmulShapeError, match="inner sizes"):
        K.mm(a, rand(5, 2))
    with pytest.raises(MatmulShapeError, match="2-D"):
        K.mm(rand(2, 3, 4), rand(4, 2))
    with pytest.raises(MatmulShapeError, match="one dtype"):
        K.mm(a, rand(4, 2, dtype=torch.float64))
    with pytest.raises(UnsupportedInputError, match="int64"):
        K.mm(torch.ones(2, 2, dtype=torch.int64), torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(MatmulShapeError, match="broadcast"):
        K.addmm(rand(3), a, rand(4, 5))
    with pytest.raises(MatmulShapeError, match="batch"):
        K.bmm(rand(2, 3, 4), rand(3, 4, 5))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        K.mm(np.ones((2, 2)), a)  # type: ignore[arg-type]


def test_aten_table_names_real_overloads() -> None:
    for name, fn in K.ATEN_KERNELS.items():
        ns, packet, overload = name.split(".")
        assert getattr(getattr(getattr(torch.ops, ns), packet), overload) is not None
        assert callable(fn)
