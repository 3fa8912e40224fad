"""The stored Strassen-like scheme is what the search finds, and its relations hold exactly."""

import itertools

import numpy as np
import pytest

from verde.coding import strassen_checks as data
from verde.coding.bilinear import SubProduct, strassen, transformed, winograd
from verde.coding.strassen_search import (
    all_singles_located,
    check_relations,
    count_locatable,
    locatable,
    parity_basis,
    psmm_candidates,
    score,
    search,
    second_algorithm_candidates,
    tensors,
)


def _second() -> tuple[SubProduct, ...]:
    return tuple(SubProduct(tuple(left), tuple(right)) for left, right in data.SECOND_PRODUCTS)


def _psmms() -> tuple[SubProduct, ...]:
    return tuple(SubProduct(tuple(left), tuple(right)) for left, right in data.PSMMS)


def _nodes() -> tuple[SubProduct, ...]:
    return (*strassen().products, *_second(), *_psmms())


def test_stored_relations_hold_exactly_and_span_all_relations() -> None:
    relations = np.array(data.CHECK_RELATIONS, dtype=np.int64)
    g = tensors(_nodes())
    assert not np.any(relations @ g)  # integer arithmetic: exact
    assert np.linalg.matrix_rank(relations) == 16 - np.linalg.matrix_rank(g) == 6
    for row in relations:  # minimal support: no proper subset of its nodes is related
        support = np.flatnonzero(row)
        assert np.linalg.matrix_rank(g[support].astype(float)) == len(support) - 1


def test_relations_are_rederived_by_the_search_procedure() -> None:
    assert np.array_equal(check_relations(_nodes()), np.array(data.CHECK_RELATIONS))


def test_second_algorithm_is_the_stored_transform_of_strassen_and_multiplies() -> None:
    p, q, r = (np.array(m) for m in data.SECOND_TRANSFORM)
    algorithm = transformed(strassen(), p, q, r, data.SECOND_NAME)
    assert algorithm.products == _second()
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((6, 2))
    np.testing.assert_allclose(algorithm.multiply(a, b), a @ b, atol=1e-12)


def test_psmms_are_parity_products_not_copies() -> None:
    base = (*strassen().products, *_second())
    candidates = psmm_candidates(base)
    assert all(p in candidates for p in _psmms())
    assert np.linalg.matrix_rank(tensors(_nodes()).astype(float)) == 10  # no new dimension


def test_stored_score_is_the_recomputed_one() -> None:
    s = score(_nodes())
    assert (s.singles, s.pairs, s.triples, s.erasures, s.nonzeros) == (
        data.SCORE["singles"], data.SCORE["pairs"], data.SCORE["triples"],
        data.SCORE["erasures"], data.SCORE["nonzeros"])
    assert s.singles == 16  # any single faulty node is located


def test_psmm_search_for_the_stored_algorithm_rederives_the_psmms() -> None:
    p, q, r = (np.array(m) for m in data.SECOND_TRANSFORM)
    algorithm = transformed(strassen(), p, q, r, data.SECOND_NAME)
    choice = search([(algorithm, data.SECOND_TRANSFORM)])
    assert choice.psmms == _psmms()
    assert np.array_equal(choice.relations, np.array(data.CHECK_RELATIONS))


def test_winograd_next_to_strassen_cannot_locate_every_single_fault() -> None:
    """Why the search: with Winograd's variant two node pairs have parallel check columns."""
    h = parity_basis((*strassen().products, *winograd().products))
    assert not all_singles_located(h)
    assert count_locatable(h, 1) == 10
    assert not locatable(h, [6]) and not locatable(h, [8])  # Strassen M7 vs Winograd P2


def test_locatable_agrees_with_its_batched_count() -> None:
    h = parity_basis(_nodes())
    for size in (1, 2, 3):
        direct = sum(locatable(h, f) for f in itertools.combinations(range(16), size))
        assert direct == count_locatable(h, size)


@pytest.mark.slow
def test_full_search_finds_the_stored_scheme() -> None:
    candidates = second_algorithm_candidates()
    assert any(key == data.SECOND_TRANSFORM for _, key in candidates)
    choice = search(candidates)
    assert choice.transform == data.SECOND_TRANSFORM
    assert choice.second.products == _second()
    assert choice.psmms == _psmms()
    assert np.array_equal(choice.relations, np.array(data.CHECK_RELATIONS))
