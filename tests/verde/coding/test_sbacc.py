"""SBACC: locates and drops up to (r - s) / 2 wrong workers, refuses more, decodes the rest."""

import numpy as np
import pytest
import torch

from verde.coding import SBACC, TooManyFaults, sbacc_tradeoff
from verde.coding.bacc import BACC

N, K, R = 20, 3, 8


def _layer(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 4)) * 0.3, rng.standard_normal(4) * 0.1


def _answers(code: SBACC, seed: int) -> tuple[dict[int, np.ndarray], list[np.ndarray],
                                                list[np.ndarray]]:
    w, b = _layer(seed)
    rng = np.random.default_rng(seed + 100)
    inputs = [rng.standard_normal((5, 6)) for _ in range(K)]
    honest = {i: np.tanh(s @ w + b) for i, s in enumerate(code.encode(inputs))}
    return honest, inputs, [np.tanh(x @ w + b) for x in inputs]


def _calibrated() -> SBACC:
    probe = SBACC(N, K, R, tolerance=1.0)
    honest, _, _ = _answers(probe, 0)
    return SBACC(N, K, R, tolerance=3 * probe.honest_misfit(honest))


def test_locates_and_corrects_up_to_its_bound() -> None:
    """Wrong answers well above the tolerance are located and dropped; the rare pattern that
    the approximation noise makes ambiguous (errors bunched at the ends) is refused, never
    decoded wrongly."""
    code = _calibrated()
    rng = np.random.default_rng(1)
    exact = 0
    for trial in range(40):
        honest, _, truth = _answers(code, trial % 4)
        s = int(rng.integers(0, 3))
        stragglers = [int(i) for i in rng.choice(N, s, replace=False)]
        present = [i for i in range(N) if i not in stragglers]
        t = int(rng.integers(0, code.correctable(s) + 1))
        bad = sorted(int(i) for i in rng.choice(present, t, replace=False))
        answers = {i: honest[i] for i in present}
        for i in bad:
            answers[i] = honest[i] + rng.choice([-1.0, 1.0]) * rng.uniform(100, 200) \
                * code.tolerance
        try:
            estimates, report = code.decode_with_report(answers)
        except TooManyFaults as exc:
            assert "ambiguous" in str(exc) and t > 0
            continue
        exact += 1
        assert list(report.faulty) == bad, (stragglers, bad, report)
        assert report.stragglers == tuple(sorted(stragglers))
        assert all(report.deviation[i] > 50 * code.tolerance for i in bad)
        assert report.undetectable_below >= 2 * code.tolerance
        # The estimate is BACC's decode from exactly the honest answers that remain.
        kept = {i: honest[i] for i in present if i not in bad}
        expected = code.bacc.decode(kept)
        for e, x in zip(estimates, expected, strict=True):
            np.testing.assert_allclose(e, x, rtol=0, atol=1e-12)
        assert max(float(np.abs(e - t).max()) for e, t in zip(estimates, truth, strict=True)) \
            < 0.5
    assert exact >= 36


def test_interior_wrong_workers_are_always_located() -> None:
    code = _calibrated()
    honest, _, _ = _answers(code, 2)
    for bad in ([5], [4, 11], [3, 8, 14], [4, 7, 10, 15]):
        answers = dict(honest)
        for i in bad:
            answers[i] = honest[i] + 5.0
        assert list(code.decode_with_report(answers)[1].faulty) == bad


def test_refuses_more_wrong_workers_than_it_corrects() -> None:
    code = _calibrated()
    rng = np.random.default_rng(2)
    honest, _, _ = _answers(code, 1)
    for s in range(R - 1):
        t = code.correctable(s) + 1
        if t + code.correctable(s) > R - s:
            continue  # beyond the guarantee: a crafted pattern could be mistaken for another
        stragglers = [int(i) for i in rng.choice(N, s, replace=False)]
        present = [i for i in range(N) if i not in stragglers]
        answers = {i: honest[i] for i in present}
        for i in rng.choice(present, t, replace=False):
            answers[int(i)] = honest[int(i)] + 2.0
        with pytest.raises(TooManyFaults, match="SBACC"):
            code.decode(answers)


def test_torch_answers_decode_like_numpy() -> None:
    code = _calibrated()
    honest, _, _ = _answers(code, 3)
    answers = {i: v for i, v in honest.items() if i != 4}
    answers[9] = answers[9] + 1.0
    got_np, report = code.decode_with_report(answers)
    got_t = code.decode({i: torch.from_numpy(v).float() for i, v in answers.items()})
    assert report.faulty == (9,)
    assert got_t[0].dtype == torch.float32
    for g, e in zip(got_t, got_np, strict=True):
        np.testing.assert_allclose(g.numpy(), e, atol=1e-5)


def test_uses_first_kind_points_for_both_input_and_workers() -> None:
    code = SBACC(N, K, R, tolerance=0.1)
    np.testing.assert_array_equal(code.evaluation_points, BACC(N, K, "first").evaluation_points)
    assert code.correctable(0) == R // 2 and code.correctable(3) == (R - 3) // 2


def test_tradeoff_trades_correction_for_accuracy() -> None:
    points = sbacc_tradeoff(12, 3, 1, m1=1.0, m2=2.0, rho=2.0, bound=1.0)
    assert [p.redundancy for p in points] == list(range(1, 12))
    assert [p.correctable for p in points] == [(r - 1) // 2 for r in range(1, 12)]
    misfits = [p.honest_misfit_bound for p in points]
    assert misfits == sorted(misfits)  # more redundancy: honest answers sit farther off
    assert all(p.accuracy_bound_with_faults >= p.accuracy_bound_without_faults for p in points)
    assert points[-1].accuracy_bound_with_faults > points[0].accuracy_bound_with_faults


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"redundancy": N}, "redundancy"), ({"redundancy": -1}, "redundancy"),
    ({"redundancy": True}, "redundancy"), ({"tolerance": -0.1}, "tolerance"),
    ({"tolerance": float("inf")}, "tolerance"), ({"tolerance": "1"}, "tolerance")])
def test_bad_parameters_are_refused(kwargs: dict, match: str) -> None:
    args = {"n_workers": N, "n_inputs": K, "redundancy": R, "tolerance": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        SBACC(**args)


def test_bad_tradeoff_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="stragglers"):
        sbacc_tradeoff(8, 2, 8, m1=1, m2=1, rho=2, bound=1)
    with pytest.raises(ValueError, match="redundancy"):
        sbacc_tradeoff(8, 2, 2, m1=1, m2=1, rho=2, bound=1, redundancies=[1])
    with pytest.raises(ValueError, match="answers must not be empty"):
        SBACC(N, K, R, tolerance=0.1).honest_misfit({})
