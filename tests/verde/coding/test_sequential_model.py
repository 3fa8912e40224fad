"""The (B, W, lambda) checker agrees with the definition; the conforming sampler conforms."""

import numpy as np
import pytest

from verde.coding.delays import ConformingBursty
from verde.coding.sequential_model import BurstyStragglerModel, slowest_admissible


def _pattern(rounds: int, n: int, straggles: list[tuple[int, int]]) -> np.ndarray:
    p = np.zeros((rounds, n), dtype=bool)
    for r, w in straggles:
        p[r, w] = True
    return p


def _conforms_by_definition(p: np.ndarray, b: int, w: int, lam: int) -> bool:
    """Every window of W rounds: <= lam distinct stragglers, each within B consecutive rounds."""
    rounds = p.shape[0]
    for start in range(-w + 1, rounds):
        win = p[max(0, start): start + w]
        if win.any(axis=0).sum() > lam:
            return False
        for col in win.T:
            hits = np.flatnonzero(col)
            if hits.size and hits[-1] - hits[0] + 1 > b:
                return False
    return True


def test_bursts_and_gaps_inside_the_model_conform() -> None:
    m = BurstyStragglerModel(burst=2, window=4, lam=2)
    # worker 0: burst of 2, then again only W=4 rounds after its last straggle
    p = _pattern(10, 5, [(0, 0), (1, 0), (5, 0), (2, 3), (6, 3)])
    assert m.first_violation(p) is None
    assert m.conforms(p)


def test_restarting_a_burst_inside_a_window_is_a_violation() -> None:
    m = BurstyStragglerModel(burst=2, window=4, lam=2)
    p = _pattern(6, 3, [(0, 1), (1, 1), (3, 1)])
    where = m.first_violation(p)
    assert where is not None and where.startswith("round 3") and "[1]" in where


def test_too_many_distinct_stragglers_in_a_window_is_a_violation() -> None:
    m = BurstyStragglerModel(burst=1, window=3, lam=2)
    p = _pattern(5, 4, [(0, 0), (1, 1), (2, 2)])
    where = m.first_violation(p)
    assert where is not None and "3 distinct stragglers" in where
    assert m.first_violation(p[:2]) is None


def test_checker_matches_the_definition_on_random_patterns() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        b, w = int(rng.integers(1, 3)), int(rng.integers(3, 5))
        lam = int(rng.integers(0, 4))
        p = rng.random((8, 4)) < 0.15
        m = BurstyStragglerModel(b, w, lam)
        assert m.conforms(p) == _conforms_by_definition(p, b, w, lam)


@pytest.mark.parametrize(("b", "w", "lam"), [(2, 4, 2), (2, 5, 4), (1, 2, 3), (3, 4, 6)])
def test_conforming_sampler_stays_in_the_model(b: int, w: int, lam: int) -> None:
    model = ConformingBursty(b, w, lam, start_prob=0.3)
    sd = model.sample(400, 12, np.random.default_rng(b * 10 + w))
    p = sd > model.slowdown / 2
    assert p.mean() > 0.02  # it does straggle
    assert BurstyStragglerModel(b, w, lam).first_violation(p) is None
    assert _conforms_by_definition(p, b, w, lam)


@pytest.mark.parametrize(("b", "w", "lam"), [(0, 3, 1), (3, 3, 1), (1, 3, -1)])
def test_bad_model_parameters_raise(b: int, w: int, lam: int) -> None:
    with pytest.raises(ValueError):
        BurstyStragglerModel(b, w, lam)


def test_checker_rejects_non_boolean_patterns() -> None:
    with pytest.raises(ValueError, match="bool"):
        BurstyStragglerModel(1, 2, 1).first_violation(np.zeros((3, 3)))


def test_slowest_admissible_gives_up_on_the_slowest_while_admitted() -> None:
    finish = np.array([1.0, 9.0, 3.0, 7.0, 0.0])
    assert slowest_admissible(finish, lambda s: len(s) <= 2) == {1, 3}
    # stops at the first inadmissible set even if a smaller worker set would be admissible
    assert slowest_admissible(finish, lambda s: 1 not in s) == set()
    assert slowest_admissible(finish, lambda s: True) == {0, 1, 2, 3}  # idle worker 4 excluded
