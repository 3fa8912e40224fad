"""The contract every rule keeps: same type/dtype/device/shape out, inputs untouched, numpy and
torch agree, symmetric rules ignore worker order, rules commute with positive scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import verde.robust as R

ALL = sorted(R.AGGREGATORS)
SYMMETRIC = sorted(set(R.AGGREGATORS) - {"monna"})
N, F, D = 11, 2, 24


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_dtype_shape_and_inputs_untouched(name, dtype, run_aggregator, make_clustered,
                                                hash_of):
    x = make_clustered(N, F, D).astype(dtype).reshape(N, 4, 6)
    items = [v.copy() for v in x]
    before = hash_of(items)
    out = run_aggregator(name, items, F)
    assert hash_of(items) == before
    assert isinstance(out, np.ndarray)
    assert out.dtype == dtype and out.shape == (4, 6)
    assert np.isfinite(out).all()
    assert not np.shares_memory(out, x) and all(not np.shares_memory(out, v) for v in items)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_dtype_shape_and_inputs_untouched(name, dtype, run_aggregator, make_clustered,
                                                hash_of):
    x = torch.tensor(make_clustered(N, F, D)).to(dtype)
    before = hash_of(x)
    out = run_aggregator(name, x, F)
    assert hash_of(x) == before
    assert isinstance(out, torch.Tensor)
    assert out.dtype == dtype and out.shape == (D,) and out.device == x.device
    assert torch.isfinite(out).all()
    out.add_(1.0)  # the result owns its memory: writing to it never reaches the input
    assert hash_of(x) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU on this machine")
@pytest.mark.parametrize("name", ALL)
def test_gpu_device_preserved(name, run_aggregator, make_clustered):
    x = torch.tensor(make_clustered(N, F, D), device="cuda", dtype=torch.float32)
    out = run_aggregator(name, x, F)
    assert out.device == x.device and out.dtype == torch.float32
    cpu = run_aggregator(name, x.cpu(), F)
    np.testing.assert_allclose(out.cpu().numpy(), cpu.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_numpy_and_torch_agree(name, run_aggregator, make_clustered):
    x = make_clustered(N, F, D, seed=3)
    a = run_aggregator(name, x, F)
    b = run_aggregator(name, torch.tensor(x), F)
    np.testing.assert_allclose(a, b.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", SYMMETRIC)
def test_permutation_invariance(name, run_aggregator, make_clustered):
    x = make_clustered(N, F, D, seed=5)
    perm = np.random.default_rng(1).permutation(N)
    np.testing.assert_allclose(run_aggregator(name, x, F), run_aggregator(name, x[perm], F),
                               rtol=1e-9, atol=1e-9)


def test_monna_follows_its_reference_under_permutation(make_clustered):
    x = make_clustered(N, F, D, seed=5)
    perm = np.random.default_rng(1).permutation(N)
    ref = int(np.flatnonzero(perm == 0)[0])  # where worker 0 went
    np.testing.assert_allclose(R.monna(x, F), R.monna(x[perm], F, reference=ref), rtol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_positive_scaling_equivariance(name, run_aggregator, make_clustered):
    x = make_clustered(N, F, D, seed=7)
    c = 8.0  # a power of two: scaling is exact in floating point
    np.testing.assert_allclose(run_aggregator(name, c * x, F), c * run_aggregator(name, x, F),
                               rtol=1e-6, atol=1e-9)


def test_static_clipping_is_not_scale_equivariant_negative_control(make_clustered):
    # The scaling test above can fail: a rule with a fixed scale (static clipping) does.
    x = make_clustered(N, F, D, seed=7)
    rule = R.compose(R.StaticClipping(threshold=1.0), R.Mean())
    assert not np.allclose(rule(8.0 * x), 8.0 * rule(x))


# FLTrust judges direction against the server's reference, not distance; it has its own tests.
@pytest.mark.parametrize("name", sorted(set(ALL) - {"fltrust"}))
def test_robust_rules_ignore_far_outliers_and_mean_does_not(name, run_aggregator,
                                                            make_clustered):
    x = make_clustered(N, F, D, seed=9, spread=0.01)
    honest = x[: N - F].mean(axis=0)
    err = np.linalg.norm(run_aggregator(name, x, F) - honest)
    if name == "mean":
        assert err > 1.0
    else:
        assert err < 0.2, err


@pytest.mark.parametrize("bad", [[], np.zeros((0, 3)), [np.zeros(3), torch.zeros(3)],
                                 [np.zeros(3), np.zeros(4)], np.zeros((4, 3), dtype=np.int64),
                                 "abc", [np.zeros(3, np.float32), np.zeros(3, np.float64)]])
def test_bad_inputs_raise_clear_errors(bad):
    with pytest.raises(R.RobustInputError):
        R.median(bad)


@pytest.mark.parametrize("f", [-1, 1.5, True])
def test_bad_f_raises(f, make_clustered):
    with pytest.raises(ValueError, match="f must be"):
        R.trimmed_mean(make_clustered(N, F, D), f)


@pytest.mark.parametrize("name", sorted(R.PRE_AGGREGATORS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_pre_aggregators_keep_type_and_leave_inputs_alone(name, dtype, make_clustered, hash_of):
    x = torch.tensor(make_clustered(N, F, D)).to(dtype).reshape(N, 4, 6)
    before = hash_of(x)
    out = R.make_pre_aggregator(name, f=F)(x)
    assert hash_of(x) == before
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape[1:] == (4, 6)
    as_np = R.make_pre_aggregator(name, f=F)(x.numpy() if dtype != torch.float16 else
                                             x.float().numpy().astype(np.float16))
    assert isinstance(as_np, np.ndarray) and as_np.shape == tuple(out.shape)
    np.testing.assert_allclose(as_np.astype(np.float64), out.double().numpy(), rtol=2e-3,
                               atol=2e-3)
