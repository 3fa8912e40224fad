"""The binary64 cores and the huge-argument (Payne-Hanek) reduction, against mpmath."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

from repops.math.exp import exp64_core, expm1_64_core
from repops.math.log import log64_core
from repops.math.trig import cos_f32, reduce_pio2, sin_f32
from repops.reference.elementwise_trig import reduce_pio2_reference

mp.mp.dps = 80


def rel_err(got: float, exact: mp.mpf) -> float:
    return float(abs((mp.mpf(got) - exact) / exact))


@pytest.mark.parametrize("x", [-700.0, -87.3, -1.0, -1e-9, 0.3, 1.0, 20.5, 88.7, 700.0])
def test_exp64_and_expm1_64_are_far_below_binary32_precision(x: float) -> None:
    assert rel_err(exp64_core(x), mp.exp(mp.mpf(x))) < 2.0**-48
    assert rel_err(expm1_64_core(x), mp.expm1(mp.mpf(x))) < 2.0**-48


@pytest.mark.parametrize("x", [2.0**-149, 1e-30, 0.5, 0.999, 1.0 + 2.0**-20, 3.0, 1e30, 3.4e38])
def test_log64(x: float) -> None:
    exact = mp.log(mp.mpf(x))
    if exact == 0:
        assert log64_core(x) == 0.0
    else:
        assert rel_err(log64_core(x), exact) < 2.0**-48


@pytest.mark.parametrize("y", [0.5, 0.75, 1.0, 1.49, 2.0, 3.3, 4.0, 7.9, 8.0, 12.5, 15.99])
def test_mills_ratio_is_binary32_accurate(y: float) -> None:
    # K(y) = Q(y) e^(y^2/2): the binade polynomials hold 2^-25.7 before their own roundings.
    from repops.math.gauss import mills_ratio_f32

    exact = mp.erfc(mp.mpf(y) / mp.sqrt(2)) / 2 * mp.exp(mp.mpf(y) ** 2 / 2)
    assert rel_err(float(mills_ratio_f32(np.float32(y))), exact) < 3 * 2.0**-24


def test_core_bound_check_can_fail() -> None:
    assert rel_err(exp64_core(1.0) * (1 + 2.0**-40), mp.e) > 2.0**-48


def _ulp32(exact: mp.mpf) -> mp.mpf:
    e = max(int(mp.floor(mp.log(abs(exact), 2))), -126) - 23
    return mp.mpf(2) ** e


def test_huge_arguments_are_reduced_exactly() -> None:
    rng = np.random.default_rng(7)
    exps = rng.integers(24, 128, 300)
    mant = rng.integers(2**23, 2**24, 300)
    xs = (mant.astype(np.float64) * np.exp2(exps - 23.0)).astype(np.float32)
    xs[:2] = np.float32(3.4028235e38), np.float32(-16777216.0)
    worst = 0.0
    for x in xs:
        for f, ref in ((sin_f32, mp.sin), (cos_f32, mp.cos)):
            exact = ref(mp.mpf(float(x)))
            worst = max(worst, float(abs(mp.mpf(float(f(x))) - exact) / _ulp32(exact)))
    assert worst <= 0.5 + 2.0**-10


def test_reduction_kernel_equals_reference_on_huge_values() -> None:
    xs = np.array([2.0**24, 1e20, 3.4e38, -7.7e30, 2.0**100 + 2.0**77], dtype=np.float32)
    n_ref, r_ref = reduce_pio2_reference(xs)
    for x, n, r in zip(xs, n_ref, r_ref, strict=True):
        kn, kr = reduce_pio2(x)
        assert kn == n and kr == r
