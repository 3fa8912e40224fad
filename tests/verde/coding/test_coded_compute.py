"""Coded computation over in-process workers: stragglers are skipped, cheaters located."""

import numpy as np
import pytest
import torch
from torch import nn

from verde.coding import (
    BACC,
    SBACC,
    FaultTolerantStrassen,
    ReplicatedStrassen,
    TooManyFaults,
    TooManyStragglers,
)
from verde.coding.coded_compute import (
    InProcessShareWorker,
    Share,
    coded_evaluate,
    coded_inference,
    coded_matmul,
)
from verde.coding.strassen_ft import MatmulDecoding

SLOW = 30.0  # seconds a straggler would take; never waited for


def _layer() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 4), nn.Tanh())


def test_bacc_skips_stragglers_and_counts_failures() -> None:
    model = _layer()
    code = BACC(12, 3)
    workers = [InProcessShareWorker(model, delay=SLOW if i in (2, 9) else 0.0,
                                    fail=(i == 5)) for i in range(12)]
    inputs = [torch.randn(4, 6) for _ in range(3)]
    run = coded_evaluate(code, inputs, workers, wait_for=9, timeout_s=SLOW / 2)
    assert run.elapsed_s < SLOW / 2
    assert 5 in run.failed and "worker failed" in run.failed[5]
    assert set(run.stragglers) == {2, 9}
    assert len(run.answered) == 9
    expected = code.decode({i: model(s) for i, s in enumerate(code.encode(inputs))
                            if i in run.answered})
    for got, want in zip(run.result, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_sbacc_locates_a_cheating_worker_next_to_a_straggler() -> None:
    model = _layer()
    inputs = [torch.randn(4, 6) for _ in range(3)]
    probe = SBACC(16, 3, 6, tolerance=1.0)
    honest = {i: model(s).detach() for i, s in enumerate(probe.encode(inputs))}
    code = SBACC(16, 3, 6, tolerance=3 * probe.honest_misfit(honest))
    workers = [InProcessShareWorker(model, delay=SLOW if i == 0 else 0.0,
                                    fault=(lambda y: y + 3.0) if i == 7 else None)
               for i in range(16)]
    run = coded_evaluate(code, inputs, workers, wait_for=15)
    assert run.stragglers == (0,)
    assert run.faulty == (7,)
    assert run.report is not None and run.report.deviation[7] > 2.0
    expected = code.bacc.decode({i: honest[i] for i in range(1, 16) if i != 7})
    for got, want in zip(run.result, expected, strict=True):
        torch.testing.assert_close(got.detach(), want)


def test_sbacc_refuses_too_many_cheaters() -> None:
    model = _layer()
    inputs = [torch.randn(4, 6) for _ in range(3)]
    code = SBACC(16, 3, 4, tolerance=1e-3)
    workers = [InProcessShareWorker(model, fault=(lambda y: y + 3.0) if i in (3, 8, 12)
                                    else None) for i in range(16)]
    with pytest.raises(TooManyFaults, match="SBACC"):
        coded_evaluate(code, inputs, workers)


def test_coded_inference_of_a_model_on_a_batch() -> None:
    model = _layer()
    batch = torch.randn(12, 6)
    run = coded_inference(lambda x: model(x).detach(), batch, BACC(40, 4))
    assert run.result.shape == (12, 4)
    assert float((run.result - model(batch).detach()).abs().max()) < 0.1
    np_run = coded_inference(np.tanh, batch.numpy().astype(np.float64), BACC(40, 4))
    assert np_run.result.shape == (12, 6)
    assert float(np.abs(np_run.result - np.tanh(batch.numpy())).max()) < 0.1


def test_coded_matmul_with_a_cheating_and_a_missing_node() -> None:
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, 10, generator=gen), torch.randn(10, 6, generator=gen)
    scheme = FaultTolerantStrassen()
    workers = [InProcessShareWorker(lambda x, y: x @ y, delay=SLOW if i == 14 else 0.0,
                                    fault=(lambda z: z + 0.25) if i == 3 else None)
               for i in range(16)]
    run = coded_matmul(a, b, scheme, workers, wait_for=15)
    assert run.stragglers == (14,) and run.faulty == (3,)
    torch.testing.assert_close(run.result, a @ b, rtol=1e-5, atol=1e-5)


def test_coded_matmul_replicated_baseline() -> None:
    a = np.arange(16.0).reshape(4, 4)
    run = coded_matmul(a, a, ReplicatedStrassen(3))
    assert len(run.answered) == 21 and run.faulty == ()
    np.testing.assert_allclose(run.result, a @ a)


def test_bad_arguments_are_refused() -> None:
    model = _layer()
    inputs = [torch.randn(2, 6) for _ in range(3)]
    workers = [InProcessShareWorker(model) for _ in range(5)]
    with pytest.raises(ValueError, match="need 6 workers"):
        coded_evaluate(BACC(6, 3), inputs, workers)
    with pytest.raises(ValueError, match="wait_for"):
        coded_evaluate(BACC(5, 3), inputs, workers, wait_for=0)
    with pytest.raises(ValueError, match="wait_for"):
        coded_evaluate(BACC(5, 3), inputs, workers, wait_for=6)
    with pytest.raises(ValueError, match="BACC or SBACC"):
        coded_evaluate("bacc", inputs, workers)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="equal groups"):
        coded_inference(model, torch.randn(10, 6), BACC(5, 3))
    with pytest.raises(ValueError, match="FaultTolerantStrassen or ReplicatedStrassen"):
        coded_matmul(np.eye(2), np.eye(2), BACC(5, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s"):
        coded_evaluate(BACC(5, 3), inputs, workers, timeout_s=0)
    failing = [InProcessShareWorker(model, fail=True) for _ in range(5)]
    with pytest.raises(TooManyStragglers, match=r"5 failed: share 0: RuntimeError"):
        coded_evaluate(BACC(5, 3), inputs, failing)


class _RecomputingReferee:
    """Settles a located share by recomputing it honestly here (or drops it: ``verify``)."""

    def __init__(self, verify: bool = True) -> None:
        self.verify = verify
        self.asked: list[int] = []

    def settle(self, share: Share, answer: object) -> object:
        self.asked.append(share.index)
        x, y = share.arguments
        return _product(x, y) if self.verify else None


def _product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A node's product under repops: the same bits however often it is recomputed."""
    import repops

    with repops.reproducible():
        return x @ y


def _faulty_workers(nodes: tuple[int, ...]) -> list[InProcessShareWorker]:
    return [InProcessShareWorker(_product,
                                 fault=(lambda z: z + 0.25) if i in nodes else None)
            for i in range(16)]


def test_a_referee_replaces_the_located_share_and_decoding_starts_again() -> None:
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(8, 10, generator=gen), torch.randn(10, 6, generator=gen)
    honest = coded_matmul(a, b, FaultTolerantStrassen(), _faulty_workers(()))
    referee = _RecomputingReferee()
    run = coded_matmul(a, b, FaultTolerantStrassen(), _faulty_workers((3,)), referee=referee)
    assert referee.asked == [3] and run.faulty == (3,) and run.refereed == {3: True}
    assert torch.equal(run.result, honest.result)  # decoded from the same (verified) values
    dropped = coded_matmul(a, b, FaultTolerantStrassen(), _faulty_workers((3,)),
                           referee=_RecomputingReferee(verify=False))
    assert dropped.refereed == {3: False}
    torch.testing.assert_close(dropped.result, a @ b, rtol=1e-5, atol=1e-5)


def test_beyond_the_code_its_candidates_go_to_the_referee() -> None:
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(8, 10, generator=gen), torch.randn(10, 6, generator=gen)
    with pytest.raises(TooManyFaults) as info:
        coded_matmul(a, b, FaultTolerantStrassen(), _faulty_workers((3, 7, 11, 15)))
    # several node sets explain the syndromes equally: all of their nodes are candidates
    assert "explain them equally" in str(info.value)
    assert set(info.value.candidates) & {3, 7, 11, 15}
    referee = _RecomputingReferee()
    run = coded_matmul(a, b, FaultTolerantStrassen(), _faulty_workers((3, 7, 11, 15)),
                       referee=referee)
    assert {3, 7, 11, 15} <= set(referee.asked)
    torch.testing.assert_close(run.result, a @ b, rtol=1e-5, atol=1e-5)
    # a referee that verifies nothing cannot rescue the decoding: the code still refuses
    with pytest.raises(TooManyFaults):
        coded_matmul(a, b, FaultTolerantStrassen(), _faulty_workers((3, 7, 11, 15)),
                     referee=_RecomputingReferee(verify=False))


class _BlamesNode2(FaultTolerantStrassen):
    """A code whose location is wrong: it always names node 2 (and decodes without it)."""

    def decode(self, a: object, b: object, results: dict) -> MatmulDecoding:  # type: ignore[override]
        d = super().decode(a, b, {k: v for k, v in results.items() if k != 2})
        return MatmulDecoding(d.product, (2,), d.missing, d.checks)


def test_an_upheld_location_sends_every_answer_to_the_referee() -> None:
    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(8, 10, generator=gen), torch.randn(10, 6, generator=gen)
    # node 2 is honest, node 5 is not: the referee upholds node 2, so the location was wrong
    # and every other answer is verified; node 5's is replaced
    referee = _RecomputingReferee()
    run = coded_matmul(a, b, _BlamesNode2(), _faulty_workers((5,)), referee=referee)
    assert referee.asked == [2, *[i for i in range(16) if i != 2]]
    assert all(run.refereed.values()) and len(run.refereed) == 16
    torch.testing.assert_close(run.result, a @ b, rtol=1e-5, atol=1e-5)
    # a located answer that is replaced (it was wrong) confirms the location: no audit
    referee = _RecomputingReferee()
    coded_matmul(a, b, _BlamesNode2(), _faulty_workers((2,)), referee=referee)
    assert referee.asked == [2]
