"""Simulation harness: splits, gradients, D-SGD under attack, worst case over attacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import verde.robust as R
from verde.robust.harness import (
    SimulationConfig,
    dirichlet_split,
    from_torch_datasets,
    iid_split,
    load_digits_dataset,
    simulate,
    worst_case,
)
from verde.robust.harness.simulate import (
    _LogisticTrainer,
    _Trainer,
    logistic_regression,
    small_mlp,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


def test_iid_split_is_a_partition():
    shards = iid_split(103, 7, np.random.default_rng(0))
    allidx = np.concatenate(shards)
    assert sorted(allidx.tolist()) == list(range(103))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_dirichlet_split_is_a_partition_and_heterogeneous():
    labels = np.repeat(np.arange(10), 50)
    rng = np.random.default_rng(0)
    skewed = dirichlet_split(labels, 8, 0.1, rng)
    flat = dirichlet_split(labels, 8, 1000.0, np.random.default_rng(0))
    for shards in (skewed, flat):
        assert sorted(np.concatenate(shards).tolist()) == list(range(500))
        assert all(len(s) > 0 for s in shards)

    def skew(shards):  # mean share of a worker's most common class
        return np.mean([np.bincount(labels[s], minlength=10).max() / len(s) for s in shards])

    assert skew(skewed) > 0.5 > 0.2 > skew(flat)


def test_split_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_split(np.zeros(10, dtype=int), 2, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="workers"):
        iid_split(3, 5, np.random.default_rng(0))


def test_closed_form_logistic_gradients_match_autograd(digits):
    model = logistic_regression(digits)
    xb = digits.x_train[:96].reshape(3, 32, 64)
    yb = digits.y_train[:96].reshape(3, 32)
    torch.testing.assert_close(_LogisticTrainer(model).gradients(xb, yb),
                               _Trainer(model).gradients(xb, yb), rtol=1e-5, atol=1e-6)


def test_attack_free_training_learns(digits):
    res = simulate(digits, R.Mean(), None, SimulationConfig(n=5, f=0, rounds=40, lr=1.0))
    assert not res.diverged and res.accuracy > 0.85


def test_nan_attack_breaks_the_mean_but_not_trimmed_mean(digits):
    cfg = SimulationConfig(n=9, f=2, rounds=20, lr=1.0)
    assert simulate(digits, R.Mean(), "nan", cfg).diverged
    robust = simulate(digits, R.TrimmedMean(2), "nan", cfg)
    assert not robust.diverged and robust.accuracy > 0.8


def test_label_flipping_and_fltrust_paths(digits):
    cfg = SimulationConfig(n=9, f=2, rounds=20, lr=1.0, split="dirichlet", alpha=0.5)
    assert simulate(digits, R.FLTrust(), "label_flipping", cfg).accuracy > 0.5
    iid = SimulationConfig(n=9, f=2, rounds=20, lr=1.0)
    assert simulate(digits, R.Median(2), R.make_attack("optimal_ipm"), iid).accuracy > 0.5


def test_worst_case_is_the_minimum(digits):
    cfg = SimulationConfig(n=9, f=2, rounds=10, lr=1.0)
    out = worst_case(digits, lambda: R.compose(R.NNM(2), R.Krum(2)), ["sign_flipping", "ipm"],
                     cfg)
    assert out["worst"] == min(out["sign_flipping"], out["ipm"])


def test_any_torch_dataset_and_model():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(300, 6)), dtype=torch.float32)
    y = (x[:, 0] + x[:, 1] > 0).long()
    ds = from_torch_datasets(torch.utils.data.TensorDataset(x[:240], y[:240]),
                             torch.utils.data.TensorDataset(x[240:], y[240:]), 2)
    res = simulate(ds, R.CenteredClipping(1), "alie", SimulationConfig(n=6, f=1, rounds=30),
                   model_fn=lambda d: small_mlp(d, hidden=8))
    assert res.accuracy > 0.8


def test_config_validation():
    with pytest.raises(ValueError, match="split"):
        SimulationConfig(split="weird")
    with pytest.raises(ValueError, match="0 <= f < n"):
        SimulationConfig(n=4, f=4)
    with pytest.raises(ValueError, match="momentum"):
        SimulationConfig(momentum=1.0)


def test_f_positive_needs_an_attack(digits):
    with pytest.raises(ValueError, match="needs an attack"):
        simulate(digits, R.Mean(), None, SimulationConfig(n=5, f=1, rounds=1))


def test_adaptive_attack_against_fltrust_gets_the_reference(digits):
    cfg = SimulationConfig(n=9, f=2, rounds=5, lr=1.0)
    res = simulate(digits, R.FLTrust(), "optimal_ipm", cfg)  # raised before: no reference
    assert not res.diverged
