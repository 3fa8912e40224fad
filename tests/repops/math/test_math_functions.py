"""repops.math functions: kernel == numpy reference bit for bit, IEEE special values, accuracy.

The compiled scalar functions are exercised through the flat array maps of
repops.kernels.elementwise_maps (the same code the aten kernels run).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.special as sp

import repops.reference.elementwise as R
from repops.kernels.elementwise_maps import BINARY_MAPS, UNARY_MAPS
from repops.reference.elementwise_pow import pow_f32_reference, rsqrt_f32_reference
from repops.reference.elementwise_trig import cos_f32_reference, sin_f32_reference

UNARY_REFS = {
    "exp": R.exp_f32_reference,
    "expm1": R.expm1_f32_reference,
    "log": R.log_f32_reference,
    "log1p": R.log1p_f32_reference,
    "tanh": R.tanh_f32_reference,
    "sigmoid": R.sigmoid_f32_reference,
    "silu": R.silu_f32_reference,
    "erf": R.erf_f32_reference,
    "gelu_erf": R.gelu_erf_f32_reference,
    "gelu_tanh": R.gelu_tanh_f32_reference,
    "sin": sin_f32_reference,
    "cos": cos_f32_reference,
    "rsqrt": rsqrt_f32_reference,
}
BINARY_REFS = {
    "pow": pow_f32_reference,
    "silu_backward": R.silu_backward_f32_reference,
    "gelu_erf_backward": R.gelu_erf_backward_f32_reference,
    "gelu_tanh_backward": R.gelu_tanh_backward_f32_reference,
}
SPECIAL = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38, 1.1754944e-38, 3.4028235e38,
     -3.4028235e38, 1.0, -1.0, 0.5, 2.0, 88.72283, 88.72284, 89.0, -87.33655, -103.97, -104.0,
     16777216.0, -16777216.0, 1e20, 1.5707964, 3.1415927, 10.5, -10.5, 9.99, 3.92, 0.999999],
    dtype=np.float32,
)  # fmt: skip


def inputs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    subnormal = (rng.integers(1, 2**23, n // 8, dtype=np.uint32)).view(np.float32)
    return np.concatenate([SPECIAL, bits, rng.normal(0, 4, n).astype(np.float32), subnormal,
                           -subnormal])


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: identical encodings, or both NaN (payloads are unspecified, C6)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def run_unary(name: str, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    UNARY_MAPS[name](x, out)
    return out


def run_binary(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty_like(a)
    BINARY_MAPS[name](a, b, out)
    return out


@pytest.mark.parametrize("name", sorted(UNARY_REFS))
def test_unary_kernel_equals_reference(name: str) -> None:
    x = inputs(6000, seed=sum(map(ord, name)))
    got = run_unary(name, x)
    want = UNARY_REFS[name](x)
    bad = ~same_bits(got, want)
    assert not bad.any(), (name, x[bad][:5], got[bad][:5], want[bad][:5])


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_trig_vector_form_equals_reference(name: str) -> None:
    """Chunks without a magnitude of 2^24 or more run the branch-free form (sin_near_f32):
    the same bits as the reference, special values included; a chunk that does hold one (and
    the inputs of the test above) runs the branching form."""
    x = inputs(6000, seed=11)
    near = x[~(np.abs(x) >= 2.0**24) | ~np.isfinite(x)]  # no huge finite argument at all
    mixed = np.concatenate([near[:100], np.float32([3e9]), near[100:]])  # one huge argument
    for arg in (near, mixed):
        got = run_unary(name, arg)
        want = UNARY_REFS[name](arg)
        bad = ~same_bits(got, want)
        assert not bad.any(), (name, arg[bad][:5], got[bad][:5], want[bad][:5])
    assert np.isnan(run_unary(name, np.float32([np.inf, -np.inf, np.nan]))).all()
    finite = near[np.isfinite(near)]
    assert not same_bits(run_unary(name, finite), run_unary(name, finite + 1)).all()  # can fail


@pytest.mark.parametrize("name", sorted(BINARY_REFS))
def test_binary_kernel_equals_reference(name: str) -> None:
    rng = np.random.default_rng(3)
    a = inputs(1500, seed=5)
    b = np.concatenate([rng.normal(0, 6, a.size - SPECIAL.size).astype(np.float32), SPECIAL])
    if name == "pow":  # all pairs of special values, plus positive and negative bases
        sa, sb = np.meshgrid(SPECIAL, np.concatenate([SPECIAL, [3.0, -3.0, 0.5, -2.0, -1.0, 2.0]]))
        a = np.concatenate([a, sa.ravel().astype(np.float32)])
        b = np.concatenate([b, sb.ravel().astype(np.float32)])
    got = run_binary(name, a, b)
    want = BINARY_REFS[name](a, b)
    bad = ~same_bits(got, want)
    assert not bad.any(), (name, a[bad][:5], b[bad][:5], got[bad][:5], want[bad][:5])


def test_comparison_detects_a_one_ulp_change() -> None:
    x = inputs(100)
    got = run_unary("exp", x)
    tweaked = got.copy()
    i = int(np.flatnonzero(np.isfinite(got) & (got > 0))[0])
    tweaked[i] = np.nextafter(tweaked[i], np.float32(np.inf))
    assert not same_bits(tweaked, R.exp_f32_reference(x)).all()


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "erf", "sin", "gelu_erf"])
def test_thread_count_changes_no_bit(name: str, num_threads: Callable[[int], None]) -> None:
    x = inputs(20000, seed=11)
    num_threads(1)
    one = run_unary(name, x)
    num_threads(2)
    two = run_unary(name, x)
    assert same_bits(one, two).all()


def test_exp_special_values() -> None:
    f = np.float32
    x = np.array([89.0, 88.72284, np.inf, -np.inf, np.nan, 0.0, -0.0, -104.0, -103.9, -100.0],
                 dtype=f)
    y = run_unary("exp", x)
    assert y[0] == np.inf and y[1] == np.inf and y[2] == np.inf
    assert y[3] == 0 and np.isnan(y[4]) and y[5] == 1 and y[6] == 1 and y[7] == 0
    assert y[8] == f(2.0**-149)  # exp(-103.9) ~ 8.3e-46 rounds to the smallest subnormal
    assert 0 < y[9] < f(2.0**-126)  # a subnormal result, not flushed
    assert run_unary("exp", np.array([88.7228], f))[0] < np.inf


def test_log_special_values() -> None:
    f = np.float32
    x = np.array([-1.0, 0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, 1e-45, 2.0**-149 * 3], dtype=f)
    y = run_unary("log", x)
    assert np.isnan(y[0]) and y[1] == -np.inf and y[2] == -np.inf and y[3] == np.inf
    assert np.isnan(y[4]) and np.isnan(y[5]) and y[6] == 0 and not np.signbit(y[6])
    assert y[7] == f(np.log(2.0**-149)) and np.isfinite(y[8])


def test_sigmoid_family_special_values() -> None:
    f = np.float32
    x = np.array([np.inf, -np.inf, np.nan, -100.0, -90.0, 100.0], dtype=f)
    s = run_unary("sigmoid", x)
    assert s[0] == 1 and s[1] == 0 and np.isnan(s[2]) and s[5] == 1
    # exp(-|x|) never overflows: the tiny sigmoid of x < -88.7 is a (sub)normal number, where
    # 1 / (1 + exp(-x)) would give 0.
    assert s[3] == run_unary("exp", np.array([-100.0], f))[0] and 0 < s[4] < f(2.0**-126)
    y = run_unary("silu", x)
    assert y[0] == np.inf and np.isnan(y[1]) and np.isnan(y[2]) and y[3] < 0 and y[5] == 100
    t = run_unary("tanh", x)
    assert t[0] == 1 and t[1] == -1 and np.isnan(t[2]) and t[3] == -1 and t[5] == 1
    m = run_unary("expm1", x)
    assert m[0] == np.inf and m[1] == -1 and np.isnan(m[2]) and m[3] == -1 and m[5] == np.inf
    assert run_unary("expm1", np.array([88.72], f))[0] < np.inf


def test_odd_functions_keep_the_sign_of_zero() -> None:
    z = np.array([0.0, -0.0], dtype=np.float32)
    for name in ("tanh", "erf", "sin", "expm1", "log1p", "silu", "gelu_erf"):
        y = run_unary(name, z)
        assert (np.signbit(y) == [False, True]).all(), name


def test_pow_ieee_special_cases() -> None:
    f = np.float32
    cases = [  # (x, y, expected)
        (np.nan, 0.0, 1.0), (1.0, np.nan, 1.0), (-1.0, np.inf, 1.0), (0.5, np.inf, 0.0),
        (2.0, -np.inf, 0.0), (-0.0, -3.0, -np.inf), (-0.0, -2.0, np.inf), (-0.0, 3.0, -0.0),
        (-np.inf, 3.0, -np.inf), (-np.inf, -3.0, -0.0), (-2.0, 3.0, -8.0), (2.0, 10.0, 1024.0),
        (3.0, 2.0, 9.0),
    ]  # fmt: skip
    a = np.array([c[0] for c in cases], f)
    b = np.array([c[1] for c in cases], f)
    got = run_binary("pow", a, b)
    assert same_bits(got, np.array([c[2] for c in cases], f)).all(), got
    assert np.isnan(run_binary("pow", np.array([-2.0], f), np.array([0.5], f))[0])


ACCURACY = [  # (name, float64 reference, inputs, max ulp)
    ("exp", np.exp, (-87.0, 88.0), 1.0),
    ("log", np.log, (1e-30, 1e30), 1.0),
    ("tanh", np.tanh, (-12.0, 12.0), 2.5),
    ("sigmoid", sp.expit, (-30.0, 30.0), 2.5),
    ("silu", lambda x: x * sp.expit(x), (-30.0, 30.0), 3.2),
    ("erf", sp.erf, (-5.0, 5.0), 1.6),
    ("gelu_erf", lambda x: x * sp.ndtr(x), (-13.0, 10.0), 4.0),
    ("sin", np.sin, (-1e4, 1e4), 0.51),
    ("cos", np.cos, (-1e4, 1e4), 0.51),
    ("expm1", np.expm1, (-5.0, 5.0), 1.5),
    ("log1p", np.log1p, (-0.9, 10.0), 0.51),
]


@pytest.mark.parametrize(("name", "ref", "rng_", "bound"), ACCURACY)
def test_accuracy_against_binary64(name: str, ref: object, rng_: tuple[float, float],
                                   bound: float) -> None:
    rng = np.random.default_rng(1)
    lo, hi = rng_
    if name == "log":
        x = np.exp(rng.uniform(np.log(lo), np.log(hi), 50000)).astype(np.float32)
    else:
        x = rng.uniform(lo, hi, 50000).astype(np.float32)
    y = run_unary(name, x)
    r = ref(x.astype(np.float64))  # type: ignore[operator]
    err, worst = max_ulp(y, r)
    assert err <= bound, (name, err, x[worst])


@pytest.mark.parametrize(("exponent", "lo", "hi"), [
    (1.0, -1e38, 1e38), (2.0, -1e18, 1e18), (3.0, -1e12, 1e12), (-1.0, -1e30, 1e30),
    (-2.0, -1e18, 1e18), (0.5, 0.0, 1e30),
])
def test_pow_shortcuts_are_correctly_rounded(exponent: float, lo: float, hi: float) -> None:
    # The shortcut exponents (x*x, (x*x)*x and 1/(x*x) in binary64, 1/x, sqrt) keep the
    # general case's half ulp.
    x = np.random.default_rng(4).uniform(lo, hi, 50000).astype(np.float32)
    y = run_binary("pow", x, np.full_like(x, exponent))
    err, worst = max_ulp(y, x.astype(np.float64) ** exponent)
    assert err <= 0.5001, (err, x[worst])


def test_pow_shortcut_accuracy_check_can_fail() -> None:
    # The binary32 cube (x*x)*x, two roundings, is more than half an ulp off somewhere.
    x = np.random.default_rng(4).uniform(-1e12, 1e12, 50000).astype(np.float32)
    assert max_ulp((x * x) * x, x.astype(np.float64) ** 3)[0] > 0.5001


def max_ulp(y: np.ndarray, r: np.ndarray) -> tuple[float, int]:
    """Max error of binary32 results ``y`` in ulps of the binary64 reference ``r`` (r != 0)."""
    ok = np.flatnonzero(r != 0)
    ulp = np.exp2(np.maximum(np.floor(np.log2(np.abs(r[ok]))), -126) - 23)
    err = np.abs(y[ok].astype(np.float64) - r[ok]) / ulp
    return float(err.max()), int(ok[err.argmax()])


def test_accuracy_check_can_fail() -> None:
    # Results two ulps off (one step up from the correctly rounded value, twice) exceed 1 ulp.
    x = np.linspace(0.5, 2.0, 1000, dtype=np.float32)
    r = np.exp(x.astype(np.float64))
    up = np.float32(np.inf)
    y = np.nextafter(np.nextafter(r.astype(np.float32), up), up)
    assert max_ulp(y, r)[0] > 1.0


def _gelu_blocks() -> np.ndarray:
    """Arguments for the erf-GELU maps' block check (SCAN elements at a time): blocks all below
    4 in magnitude (dense near the table's binade edges 0.5, 1, 2 and just under 4), which run
    the short Mills ratio; then blocks each holding one 4.0, -4.0, NaN, inf, 9.5, 5.0 or -9.5
    among small values, which take the full one (the short one gives other bits at 4, 5, 9.5,
    the same at NaN and inf)."""
    from repops.kernels.elementwise_maps import SCAN

    rng = np.random.default_rng(12)
    edges = np.float32([0.5, 1.0, 2.0, 4.0])
    near = np.concatenate([np.nextafter(edges, np.float32(0)), edges[:3],
                           np.nextafter(edges[:3], np.float32(8))])
    short = np.concatenate([near, -near, rng.uniform(-4, 4, 40 * SCAN).astype(np.float32)])
    short = short[np.abs(short) < 4][: 40 * SCAN]
    long = rng.normal(0, 1, (7, SCAN)).clip(-3, 3).astype(np.float32)
    long[:, 17] = np.float32([4.0, -4.0, np.nan, np.inf, 9.5, 5.0, -9.5])
    return np.concatenate([short, long.ravel()])


def test_gelu_erf_short_blocks_equal_reference() -> None:
    x = _gelu_blocks()
    g = np.random.default_rng(13).normal(0, 1, x.size).astype(np.float32)
    for got, want in ((run_unary("gelu_erf", x), R.gelu_erf_f32_reference(x)),
                      (run_binary("gelu_erf_backward", g, x),
                       R.gelu_erf_backward_f32_reference(g, x))):
        bad = ~same_bits(got, want)
        assert not bad.any(), (x[bad][:5], got[bad][:5], want[bad][:5])


def test_short_mills_ratio_is_wrong_past_four() -> None:
    # Why the maps check each block: past 4 the short form picks another row's polynomial.
    from repops.math.gauss import mills_ratio_f32, mills_ratio_short_f32

    for y in (1.5, 3.99):
        assert mills_ratio_short_f32(np.float32(y)) == mills_ratio_f32(np.float32(y))
    assert mills_ratio_short_f32(np.float32(5.0)) != mills_ratio_f32(np.float32(5.0))
