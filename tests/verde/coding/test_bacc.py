"""BACC: any non-empty answer set decodes, within the rigorous Berrut bound."""

import itertools

import numpy as np
import pytest
import torch

from verde.coding import TooManyStragglers
from verde.coding.bacc import BACC, composed_derivative_bounds


def _inputs(k: int, shape: tuple[int, ...], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(k)]


def test_every_answer_set_decodes_within_the_bound() -> None:
    """f = identity, so h = u (the encoder): its derivatives are what the encoder reports."""
    code = BACC(8, 3)
    inputs = _inputs(3, (4,), 0)
    shares = code.encode(inputs)
    u1, u2 = code.encoder_derivative_norms(inputs, grid=8001)
    m1, m2 = 1.05 * u1, 1.05 * u2  # a margin over the grid estimate
    for size in range(1, 9):
        for answered in itertools.combinations(range(8), size):
            estimates = code.decode({w: shares[w] for w in answered})
            bound = code.error_bound(answered, m1=m1, m2=m2)
            for j in range(3):
                assert np.abs(estimates[j] - inputs[j]).max() <= bound[j] + 1e-12, answered


def test_decode_is_berrut_interpolation_through_the_answered_points() -> None:
    code = BACC(10, 4)
    inputs = _inputs(4, (3, 2), 1)
    answers = {w: np.tanh(s) for w, s in enumerate(code.encode(inputs)) if w not in (2, 7)}
    got = code.decode(answers)
    weights = code.decoding_matrix(sorted(answers))
    for j in range(4):
        expected = sum(weights[j, i] * answers[w] for i, w in enumerate(sorted(answers)))
        np.testing.assert_allclose(got[j], expected, rtol=0, atol=1e-12)


def test_more_workers_approximate_a_nonlinear_function_better() -> None:
    inputs = _inputs(3, (16,), 2)
    truth = [np.tanh(x) for x in inputs]

    def error(n: int) -> float:
        code = BACC(n, 3)
        est = code.decode({w: np.tanh(s) for w, s in enumerate(code.encode(inputs))})
        return max(float(np.abs(e - t).max()) for e, t in zip(est, truth, strict=True))

    assert error(60) < error(15) < error(4)


def test_worst_case_bound_covers_each_straggler_pattern() -> None:
    code = BACC(9, 2)
    worst = code.worst_case_error_bound(2, m1=1.0, m2=3.0)
    for answered in itertools.combinations(range(9), 7):
        assert code.error_bound(answered, m1=1.0, m2=3.0).max() <= worst + 1e-15


def test_torch_keeps_dtype_and_matches_numpy() -> None:
    code = BACC(7, 3, "first")
    inputs = _inputs(3, (5,), 3)
    shares_np = code.encode(inputs)
    shares_t = code.encode([torch.from_numpy(x).float() for x in inputs])
    assert all(s.dtype == torch.float32 for s in shares_t)
    answers = {w: torch.sigmoid(s) for w, s in enumerate(shares_t) if w != 3}
    got = code.decode(answers)
    assert got[0].dtype == torch.float32
    expected = code.decode({w: 1 / (1 + np.exp(-s)) for w, s in enumerate(shares_np) if w != 3})
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g.numpy(), e, rtol=0, atol=1e-5)


def test_share_is_the_same_as_the_encoded_one() -> None:
    code = BACC(6, 2)
    inputs = _inputs(2, (3,), 4)
    np.testing.assert_array_equal(code.share(inputs, 4), code.encode(inputs)[4])


def test_composed_derivative_bounds_follow_the_chain_rule() -> None:
    assert composed_derivative_bounds(2.0, 3.0, gradient_bound=0.5, hessian_bound=0.25) == (
        1.0, 0.25 * 4.0 + 0.5 * 3.0)


@pytest.mark.parametrize(("args", "match"), [
    ((0, 2), "n_workers"),
    ((4, True), "n_inputs"),
    ((4, 2, "third"), "evaluation"),
    ((1, 1, "second"), "n_workers >= 2"),
])
def test_bad_shapes_are_refused(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BACC(*args)


def test_bad_inputs_and_answers_are_refused() -> None:
    code = BACC(5, 2)
    good = _inputs(2, (3,), 5)
    with pytest.raises(ValueError, match="expected 2 inputs"):
        code.encode(good[:1])
    with pytest.raises(ValueError, match="shape"):
        code.encode([good[0], np.zeros(4)])
    with pytest.raises(ValueError, match="floating dtype"):
        code.encode([np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64)])
    with pytest.raises(ValueError, match="expected a ndarray"):
        code.encode([good[0], torch.zeros(3, dtype=torch.float64)])
    with pytest.raises(TooManyStragglers, match="at least one answer"):
        code.decode({})
    with pytest.raises(ValueError, match="worker must be an int"):
        code.decode({5: good[0]})
    with pytest.raises(ValueError, match="distinct"):
        code.decoding_matrix([1, 1])
    with pytest.raises(ValueError, match="shape"):
        code.decode({0: np.zeros(3), 1: np.zeros(2)})
    with pytest.raises(ValueError, match="grid"):
        code.encoder_derivative_norms(good, grid=2)
    with pytest.raises(ValueError, match="gradient_bound"):
        composed_derivative_bounds(1.0, 1.0, gradient_bound=-1.0, hessian_bound=0.0)
