"""Cyclic repetition: any n-s answers decode within the reported bound; unsafe patterns refused."""

from itertools import combinations

import numpy as np
import pytest
import torch

from verde.coding import CyclicRepetitionCode, NumericallyUnsafe, TooManyStragglers

EPS32 = float(np.finfo(np.float32).eps) / 2


@pytest.mark.parametrize(("n", "s"), [(3, 1), (5, 2), (6, 1), (7, 3), (8, 2)])
def test_every_pattern_up_to_s_decodes_within_its_bound(n: int, s: int) -> None:
    code = CyclicRepetitionCode(n, s, seed=1)
    rng = np.random.default_rng(2)
    grads = {p: rng.standard_normal(64).astype(np.float32) for p in range(n)}
    exact = np.sum([grads[p].astype(np.float64) for p in range(n)], axis=0)
    messages = {w: code.encode(w, grads) for w in range(n)}
    assert all(len(code.partitions_of(w)) == s + 1 for w in range(n))
    for k in range(s + 1):
        for stragglers in combinations(range(n), k):
            answers = {w: m for w, m in messages.items() if w not in stragglers}
            got, report = code.decode_with_report(answers)
            assert got.dtype == np.float32
            rel = np.linalg.norm(got - exact) / np.linalg.norm(exact)
            # Messages carry float32 rounding of each encoded sum: bound with (s+2) roundings.
            bound = report.condition * (report.residual + (s + 2) * n * EPS32) * 4
            assert rel <= bound, (stragglers, rel, bound, report.condition)


def test_too_many_stragglers_raise() -> None:
    code = CyclicRepetitionCode(6, 2)
    grads = {p: np.ones(4, np.float32) for p in range(6)}
    answers = {w: code.encode(w, grads) for w in range(3)}
    with pytest.raises(TooManyStragglers, match="n-s=4"):
        code.decode(answers)


def test_ill_conditioned_patterns_are_refused() -> None:
    code = CyclicRepetitionCode(8, 3, seed=0, max_condition=1.5)
    grads = {p: np.ones(4, np.float32) for p in range(8)}
    answers = {w: code.encode(w, grads) for w in range(5)}
    with pytest.raises(NumericallyUnsafe, match="condition number"):
        code.decode(answers)


def test_torch_input_keeps_dtype_and_matches_numpy() -> None:
    code = CyclicRepetitionCode(5, 2, seed=3)
    rng = np.random.default_rng(4)
    grads_np = {p: rng.standard_normal(16) for p in range(5)}
    grads_t = {p: torch.from_numpy(g.copy()) for p, g in grads_np.items()}
    ans_np = {w: code.encode(w, grads_np) for w in (0, 2, 4)}
    ans_t = {w: code.encode(w, grads_t) for w in (0, 2, 4)}
    out_t = code.decode(ans_t)
    assert out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.numpy(), code.decode(ans_np), rtol=0, atol=1e-12)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_condition"):
        CyclicRepetitionCode(4, 1, max_condition=0.5)
    with pytest.raises(ValueError, match="stragglers"):
        CyclicRepetitionCode(4, 4)
