"""aten elementwise kernels: bits equal to the numpy reference, dtypes (C1), broadcasting,
layouts, torch agreement within the measured error, and clear errors for bad inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import repops.reference.elementwise as R
import repops.reference.elementwise_compound as RC
from repops.errors import UnsupportedInputError
from repops.kernels.compound_ops import ATEN_KERNELS as COMPOUND
from repops.kernels.elementwise import ATEN_KERNELS as ELEMENTWISE
from repops.reference.elementwise_pow import pow_f32_reference, rsqrt_f32_reference
from repops.reference.elementwise_trig import cos_f32_reference, sin_f32_reference

K = {**ELEMENTWISE, **COMPOUND}

SameBits = Callable[[torch.Tensor, torch.Tensor], bool]  # conftest fixture type
WideRandn = Callable[..., torch.Tensor]  # conftest fixture type
OnAllPaths = Callable[[Callable[[], Any]], list[Any]]  # conftest fixture type
Sample = Callable[..., torch.Tensor]  # the sample fixture below

UNARY = {
    "aten.exp.default": (R.exp_f32_reference, torch.exp),
    "aten.expm1.default": (R.expm1_f32_reference, torch.expm1),
    "aten.log.default": (R.log_f32_reference, torch.log),
    "aten.log1p.default": (R.log1p_f32_reference, torch.log1p),
    "aten.tanh.default": (R.tanh_f32_reference, torch.tanh),
    "aten.sigmoid.default": (R.sigmoid_f32_reference, torch.sigmoid),
    "aten.silu.default": (R.silu_f32_reference, torch.nn.functional.silu),
    "aten.erf.default": (R.erf_f32_reference, torch.erf),
    "aten.sin.default": (sin_f32_reference, torch.sin),
    "aten.cos.default": (cos_f32_reference, torch.cos),
    "aten.rsqrt.default": (rsqrt_f32_reference, torch.rsqrt),
}


@pytest.fixture(scope="session")
def sample(wide_randn: WideRandn) -> Sample:
    """``sample(shape, seed=0)``: wide-range float32 values led by six IEEE special values."""

    def build(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
        x = wide_randn(shape, torch.float32, seed)
        flat = x.view(-1)
        flat[:6] = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-40])
        return x

    return build


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_reference_and_torch(
    name: str, same_bits_or_nan: SameBits, sample: Sample
) -> None:
    ref, tfn = UNARY[name]
    x = sample((37, 29))
    if name in ("aten.log.default", "aten.rsqrt.default"):
        x = x.abs()
    got = K[name](x)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert same_bits_or_nan(got, torch.from_numpy(ref(x.numpy())))
    # Within a couple of ulps of the vendor result (a sanity check on the definition).
    torch.testing.assert_close(got, tfn(x), rtol=3e-7, atol=1e-30, equal_nan=True)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_layout_and_low_precision_dtypes(
    name: str, same_bits_or_nan: SameBits, sample: Sample
) -> None:
    x = sample((16, 24), seed=1).abs()
    fn = K[name]
    base = fn(x)
    assert same_bits_or_nan(fn(x.t().contiguous()).t(), base)
    assert same_bits_or_nan(fn(x.t()).t(), base)  # strided input, same bits
    assert same_bits_or_nan(fn(x[:, ::2]), base[:, ::2])
    for dt in (torch.bfloat16, torch.float16):
        xl = x.to(dt)
        got = fn(xl)
        assert got.dtype == dt
        want = fn(xl.float()).to(dt)  # C1: binary32 result rounded once
        assert torch.equal(got.view(torch.int16), want.view(torch.int16)) or ((
            torch.isnan(got) == torch.isnan(want)
        ).all() and torch.equal(got.nan_to_num(), want.nan_to_num()))


def test_float64_transcendental_is_rejected_with_op_and_dtype() -> None:
    with pytest.raises(UnsupportedInputError, match=r"exp.*float64"):
        K["aten.exp.default"](torch.ones(3, dtype=torch.float64))
    with pytest.raises(UnsupportedInputError, match="complex"):
        K["aten.tanh.default"](torch.ones(3, dtype=torch.complex64))


def test_integer_input_promotes_to_float32() -> None:
    got = K["aten.exp.default"](torch.arange(4))
    assert got.dtype == torch.float32
    assert torch.equal(got, K["aten.exp.default"](torch.arange(4).float()))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_forward_backward(
    approximate: str, same_bits_or_nan: SameBits, sample: Sample
) -> None:
    x = sample((33, 17), seed=2)
    g = sample((33, 17), seed=3)
    fwd = K["aten.gelu.default"](x, approximate=approximate)
    bwd = K["aten.gelu_backward.default"](g, x, approximate=approximate)
    if approximate == "none":
        rf, rb = R.gelu_erf_f32_reference, R.gelu_erf_backward_f32_reference
    else:
        rf, rb = R.gelu_tanh_f32_reference, R.gelu_tanh_backward_f32_reference
    assert same_bits_or_nan(fwd, torch.from_numpy(rf(x.numpy())))
    assert same_bits_or_nan(bwd, torch.from_numpy(rb(g.numpy(), x.numpy())))
    # torch's own formulas lose accuracy in the left tail (1 + erf cancels): compare elsewhere.
    fin = torch.isfinite(x) & (x > -3) & (x < 1e10)
    tf = torch.nn.functional.gelu(x, approximate=approximate)
    torch.testing.assert_close(fwd[fin], tf[fin], rtol=1e-5, atol=2e-6)
    tb = torch.ops.aten.gelu_backward(g, x, approximate=approximate)
    torch.testing.assert_close(bwd[fin], tb[fin], rtol=1e-5, atol=2e-6)


def test_gelu_rejects_unknown_approximation() -> None:
    with pytest.raises(ValueError, match="approximate"):
        K["aten.gelu.default"](torch.ones(2), approximate="fast")


def test_silu_sigmoid_tanh_backward(same_bits_or_nan: SameBits, sample: Sample) -> None:
    x, g = sample((40,), 4), sample((40,), 5)
    y = torch.rand(40)
    got = K["aten.silu_backward.default"](g, x)
    assert same_bits_or_nan(
        got, torch.from_numpy(R.silu_backward_f32_reference(g.numpy(), x.numpy()))
    )
    sb = K["aten.sigmoid_backward.default"](g, y)
    assert same_bits_or_nan(
        sb, torch.from_numpy(RC.sigmoid_backward_reference(g.numpy(), y.numpy()))
    )
    tb = K["aten.tanh_backward.default"](g, y)
    assert same_bits_or_nan(
        tb, torch.from_numpy(RC.tanh_backward_reference(g.numpy(), y.numpy()))
    )
    torch.testing.assert_close(sb, torch.ops.aten.sigmoid_backward(g, y), equal_nan=True)
    torch.testing.assert_close(tb, torch.ops.aten.tanh_backward(g, y), equal_nan=True)


def test_pow_overloads_and_broadcasting(same_bits_or_nan: SameBits, sample: Sample) -> None:
    x = sample((6, 5), 6).abs()
    e = torch.linspace(-3, 3, 5)
    got = K["aten.pow.Tensor_Tensor"](x, e)
    want = pow_f32_reference(x.numpy(), np.broadcast_to(e.numpy(), (6, 5)))
    assert got.shape == (6, 5) and same_bits_or_nan(got, torch.from_numpy(want))
    s = K["aten.pow.Tensor_Scalar"](x, 0.37)
    assert same_bits_or_nan(s, torch.from_numpy(pow_f32_reference(x.numpy(), np.float32(0.37))))
    assert same_bits_or_nan(K["aten.pow.Tensor_Scalar"](x, 2), x * x)
    b = K["aten.pow.Scalar"](2.0, e)
    assert same_bits_or_nan(b, torch.from_numpy(pow_f32_reference(np.float32(2), e.numpy())))
    ints = torch.arange(5)
    assert torch.equal(K["aten.pow.Tensor_Scalar"](ints, 3), ints**3)  # exact integer power
    with pytest.raises(UnsupportedInputError, match="complex"):
        K["aten.pow.Tensor_Scalar"](x, 2j)


@pytest.mark.parametrize("exponent", [1.0, 2.0, 3.0, -1.0, -2.0, 0.5])
def test_pow_shortcut_kernels_equal_the_general_pow(exponent: float,
                                                    same_bits_or_nan: SameBits,
                                                    sample: Sample) -> None:
    # Tensor_Scalar with a shortcut exponent runs its own vectorised loop: the bits must be
    # those of the general kernel (pow.Tensor_Tensor with a tensor of that exponent), specials
    # included.
    special = torch.tensor([0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf"), float("nan"),
                            1e-20, -1e-15, 3e12, -7e12, 1e-45, -1e-45, 3e38, -2e-38])
    x = torch.cat([sample((1000,), 9) * 50, special])
    full = torch.full_like(x, exponent)
    general = K["aten.pow.Tensor_Tensor"](x, full)
    assert same_bits_or_nan(K["aten.pow.Tensor_Scalar"](x, exponent), general)
    if exponent == int(exponent):
        assert same_bits_or_nan(K["aten.pow.Tensor_Scalar"](x, int(exponent)), general)
    want = pow_f32_reference(x.numpy(), np.float32(exponent))
    assert same_bits_or_nan(general, torch.from_numpy(want))
    # A neighbouring exponent takes exp/log and gives other bits somewhere.
    near = float(np.nextafter(np.float32(exponent), np.float32(np.inf)))
    assert not same_bits_or_nan(K["aten.pow.Tensor_Scalar"](x, near), general)
    xb = x.to(torch.bfloat16)
    assert same_bits_or_nan(K["aten.pow.Tensor_Scalar"](xb, exponent),
                            K["aten.pow.Tensor_Tensor"](xb, full.to(torch.bfloat16)))


def _f32(t: torch.Tensor) -> np.ndarray:
    return t.numpy().reshape(-1)


def test_add_sub_with_alpha_use_fma(same_bits_or_nan: SameBits, sample: Sample) -> None:
    x, y = sample((7, 9), 7), sample((9,), 8)
    xb = np.broadcast_to(_f32(x).reshape(7, 9), (7, 9)).reshape(-1)
    yb = np.broadcast_to(_f32(y), (7, 9)).reshape(-1)
    got = K["aten.add.Tensor"](x, y, alpha=0.3)
    want = RC.axpy_reference(xb, yb, np.float32(0.3)).reshape(7, 9)
    assert same_bits_or_nan(got, torch.from_numpy(want))
    got = K["aten.sub.Tensor"](x, y, alpha=0.3)
    want = RC.axpy_reference(xb, yb, -np.float32(0.3)).reshape(7, 9)
    assert same_bits_or_nan(got, torch.from_numpy(want))
    assert same_bits_or_nan(K["aten.add.Tensor"](x, y), x + y)  # alpha == 1: IEEE add
    xd, yd = x.double(), y.double()
    gd = K["aten.add.Tensor"](xd, yd, alpha=0.3)
    wd = RC.axpy_reference(xb.astype(np.float64), yb.astype(np.float64), np.float64(0.3))
    wd = wd.reshape(7, 9)
    assert gd.dtype == torch.float64
    assert np.array_equal(gd.numpy(), wd, equal_nan=True)
    ints = torch.arange(4)
    assert torch.equal(K["aten.add.Tensor"](ints, ints, alpha=3), ints * 4)


def test_addcmul_addcdiv_lerp(same_bits_or_nan: SameBits, sample: Sample) -> None:
    s, a, b = sample((50,), 9), sample((50,), 10), sample((50,), 11)
    got = K["aten.addcmul.default"](s, a, b, value=0.25)
    want = RC.addcmul_reference(_f32(s), _f32(a), _f32(b), np.float32(0.25))
    assert same_bits_or_nan(got, torch.from_numpy(want))
    got = K["aten.addcdiv.default"](s, a, b, value=-0.1)
    want = RC.addcdiv_reference(_f32(s), _f32(a), _f32(b), np.float32(-0.1))
    assert same_bits_or_nan(got, torch.from_numpy(want))
    long_s, long_a = sample((9001,), 12), sample((9001,), 13)  # chunks and a vector tail
    for w in (0.1, 0.9, -0.7, 0.5, -0.5):  # both formulas; |w| = 1/2 takes the second
        for x, y in ((s, a), (long_s, long_a)):
            got = K["aten.lerp.Scalar"](x, y, w)
            want = RC.lerp_reference(_f32(x), _f32(y), np.float32(w))
            assert same_bits_or_nan(got, torch.from_numpy(want))
    wt = torch.rand(50) * 2 - 0.5
    got = K["aten.lerp.Tensor"](s, a, wt)
    want = RC.lerp_reference(_f32(s), _f32(a), _f32(wt))
    assert same_bits_or_nan(got, torch.from_numpy(want))
    fin = torch.isfinite(s) & torch.isfinite(a)
    torch.testing.assert_close(got[fin], torch.lerp(s, a, wt)[fin], rtol=2e-7, atol=1e-30)
    with pytest.raises(ValueError, match="value"):
        K["aten.addcmul.default"](s, a, b, value=torch.ones(2))
    with pytest.raises(UnsupportedInputError, match="floating"):
        K["aten.addcmul.default"](torch.arange(3), torch.arange(3), torch.arange(3))


def test_operands_ready_as_they_are_take_no_conversion_and_give_the_converted_bits(
    same_bits_or_nan: SameBits, sample: Sample
) -> None:
    # Contiguous float32 operands of one shape go to the kernel as they are; a transposed
    # view, a broadcast operand or a bfloat16 result take the conversions. Same bits.
    s, a, b = sample((6, 8), 13), sample((6, 8), 14), sample((6, 8), 15)
    ready = K["aten.addcdiv.default"](s, a, b, value=-0.1)
    st, at, bt = (t.t().contiguous().t() for t in (s, a, b))
    assert not st.is_contiguous()
    assert same_bits_or_nan(K["aten.addcdiv.default"](st, at, bt, value=-0.1), ready)
    row = b[:1]  # broadcast over the rows
    want = K["aten.addcmul.default"](s, a, row.expand(6, 8).contiguous(), value=0.5)
    assert same_bits_or_nan(K["aten.addcmul.default"](s, a, row, value=0.5), want)
    # A 0-dim float32 operand beside bfloat16 ones: the result is bfloat16, and torch's
    # promotion rounds that operand to bfloat16 first. A fast path must not skip that.
    half = torch.tensor(1.0 + 2.0**-12)  # not a bfloat16 value
    sb, ab = s.bfloat16(), a.bfloat16()
    got = K["aten.addcmul.default"](sb, ab, half, value=1.0)
    assert got.dtype == torch.bfloat16
    want = K["aten.addcmul.default"](sb, ab, half.bfloat16(), value=1.0)
    assert same_bits_or_nan(got, want)


def test_activation_extras(same_bits_or_nan: SameBits, sample: Sample) -> None:
    x = sample((64,), 12)
    lr = K["aten.leaky_relu.default"](x, 0.2)
    want = RC.leaky_relu_reference(_f32(x), np.float32(0.2))
    assert same_bits_or_nan(lr, torch.from_numpy(want))
    torch.testing.assert_close(lr, torch.nn.functional.leaky_relu(x, 0.2), equal_nan=True)
    el = K["aten.elu.default"](x, 1.0, 1.0, 1.0)
    assert same_bits_or_nan(el, torch.from_numpy(RC.elu_f32_reference(_f32(x), 1.0, 1.0, 1.0)))
    sp = K["aten.softplus.default"](x, 2.0, 20.0)
    assert same_bits_or_nan(sp, torch.from_numpy(RC.softplus_f32_reference(_f32(x), 2.0, 20.0)))
    fin = torch.isfinite(x)
    torch.testing.assert_close(sp[fin], torch.nn.functional.softplus(x, 2.0, 20.0)[fin],
                               rtol=1e-6, atol=1e-30)
    with pytest.raises(ValueError, match="beta"):
        K["aten.softplus.default"](x, 0.0, 20.0)


def test_every_name_is_an_aten_overload() -> None:
    for name in K:
        _, packet, overload = name.split(".")
        assert getattr(getattr(torch.ops.aten, packet), overload) is not None


def test_maps_and_draws_are_the_same_bits_on_the_serial_and_the_parallel_path(
        on_all_paths: OnAllPaths) -> None:
    """Small elementwise maps and random draws run on the calling thread (waking numba's pool
    cost milliseconds per call on a busy machine); the parallel build gives the same bits."""
    import numpy as np

    from repops.kernels.elementwise_maps import BINARY_MAPS, UNARY_MAPS
    from repops.rng import PhiloxStream
    from repops.rng.ops import uniform_values

    x = np.linspace(-3.0, 3.0, 1001, dtype=np.float32)
    y = np.linspace(0.5, 2.0, 1001, dtype=np.float32)

    def everything() -> list[bytes]:
        outs = []
        for fn in UNARY_MAPS.values():
            out = np.empty_like(x)
            fn(x, out)
            outs.append(out.tobytes())
        for fn in BINARY_MAPS.values():
            out = np.empty_like(x)
            fn(y, x, out)
            outs.append(out.tobytes())
        outs.append(uniform_values(PhiloxStream(7, stream=3), 999, torch.float32).tobytes())
        return outs

    serial, *parallel = on_all_paths(everything)
    assert all(p == serial for p in parallel)
    assert len(set(serial)) == len(serial)  # every map and the draw computed something
