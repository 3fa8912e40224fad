"""Coded computation over real (in-process) verde providers: every share a committed job, the
shares the code locates settled by disputes that name the cheater and never an honest one."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

import repops
from proofs import SigningKey
from verde.coding.bacc import BACC
from verde.coding.errors import TooManyFaults
from verde.coding.sbacc import SBACC
from verde.coding.strassen_ft import FaultTolerantStrassen, ReplicatedStrassen
from verde.integration.coded_compute import (
    DisputingShareReferee,
    InferenceShares,
    MatmulShares,
    ProviderShareWorker,
    inference_on_providers,
    inference_workers,
    matmul_on_providers,
    matmul_workers,
    share_workers,
)
from verde.integration.refereed_inference import ServiceModel
from verde.protocol.faults.plan import FaultPlan
from verde.protocol.faults.provider import CheatingProvider
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.local import LocalPeer
from verde.protocol.peers.messages import TensorBlob
from verde.protocol.peers.state import StateEntries
from verde.protocol.provider.provider import Provider


def key(label: str) -> SigningKey:
    return SigningKey.from_seed(label.encode().ljust(32, b"\0")[:32])


def honest(n: int, prefix: str = "p") -> dict[str, LocalPeer]:
    return {f"{prefix}{i}": LocalPeer(Provider(key(f"{prefix}{i}"), f"{prefix}{i}"))
            for i in range(n)}  # fmt: skip


def cheater(name: str) -> LocalPeer:
    """Flips the sign of the largest element of its first op's output in every job it runs."""
    return LocalPeer(CheatingProvider(key(name), name, plan=FaultPlan("corrupt_op", node=0)))


class TamperingPeer(LocalPeer):
    """Serves outputs whose bytes differ from what its provider committed to."""

    def fetch_state(self, job_id: str, names: Sequence[str]) -> StateEntries:
        entries = super().fetch_state(job_id, names)
        blobs = dict(entries.blobs)
        blobs[names[0]] = TensorBlob.from_tensor(blobs[names[0]].to_tensor() + 1.0)
        return StateEntries(entries.payload, blobs)


@pytest.fixture(scope="module")
def operands() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.randn(24, 20, generator=g), torch.randn(20, 16, generator=g)


@pytest.fixture(scope="module")
def honest_product(operands: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    scheme = FaultTolerantStrassen()
    run = matmul_on_providers(*operands, matmul_workers(honest(4, "h"), scheme), scheme=scheme)
    assert run.disputes == [] and run.run.faulty == () and run.named == ()
    return run.result


def test_honest_nodes_commit_to_repops_products_and_decode_to_a_times_b(
        operands: tuple[torch.Tensor, torch.Tensor], honest_product: torch.Tensor) -> None:
    a, b = operands
    torch.testing.assert_close(honest_product, a @ b, rtol=1e-4, atol=1e-4)
    scheme = FaultTolerantStrassen()
    worker = matmul_workers(honest(1, "n"), scheme)[0]
    from verde.coding.coded_compute import Share

    x, y = scheme.operands(a, b, 5)
    answer = worker.run(Share(5, (x, y)))
    with repops.reproducible():
        here = x @ y
    assert torch.equal(answer.value, here)  # the job is the repops product, bit for bit
    assert answer.spec.program == "matmul" and answer.spec.kind == "infer"


def test_a_cheater_on_one_node_is_named_by_a_dispute_and_replaced(
        operands: tuple[torch.Tensor, torch.Tensor], honest_product: torch.Tensor) -> None:
    scheme = FaultTolerantStrassen()
    peers: dict[str, LocalPeer] = honest(6)
    peers["mallory"] = cheater("mallory")  # node 6 and node 13 of 16
    run = matmul_on_providers(*operands, matmul_workers(peers, scheme), scheme=scheme)
    assert run.named == ("mallory",)
    assert set(run.run.faulty) == {6, 13} and run.run.refereed == {6: True, 13: True}
    for d in run.disputes:
        assert d.suspect == "mallory" and d.resolution is not None
        assert d.resolution.cheaters == ["mallory"]
        assert [r.verdict.reason for r in d.resolution.disputes] == ["recomputed_operator"]
    # every answer decoded is a verified repops product: the same bits as the honest run
    assert torch.equal(run.result, honest_product)
    shares = run.report()["shares"]
    assert [s["verdict"] for s in shares if s.get("flagged")] == ["replaced", "replaced"]


def test_beyond_the_codes_capability_disputes_settle_its_candidates(
        operands: tuple[torch.Tensor, torch.Tensor], honest_product: torch.Tensor) -> None:
    scheme = FaultTolerantStrassen()
    peers: dict[str, LocalPeer] = honest(3)
    peers["mallory"] = cheater("mallory-4")  # four nodes: more than the code can locate
    with pytest.raises(TooManyFaults):
        matmul_on_providers(*operands, matmul_workers(peers, scheme), scheme=scheme,
                            dispute=False)
    run = matmul_on_providers(*operands, matmul_workers(peers, scheme), scheme=scheme)
    assert run.named == ("mallory",)
    assert torch.equal(run.result, honest_product)
    upheld = [d for d in run.disputes if d.resolution and d.suspect in d.resolution.honest]
    for d in upheld:  # an honest candidate was confirmed, never named
        assert d.suspect != "mallory" and d.resolution is not None
        assert d.resolution.cheaters == []


def test_honest_answers_an_over_tight_check_flags_are_upheld_never_named(
        operands: tuple[torch.Tensor, torch.Tensor]) -> None:
    # a rounding allowance far below float32's flags every honest node; a cheating second
    # opinion is the one named in every dispute, the honest nodes are upheld, and the code
    # still refuses (it cannot vouch for C) rather than return a product
    from verde.coding.coded_compute import coded_matmul

    scheme = FaultTolerantStrassen(tolerance_scale=1e-9)
    workers = matmul_workers(honest(4, "t"), scheme)
    mallory = ProviderShareWorker(cheater("mallory-ref"), MatmulShares(), "mallory")
    referee = DisputingShareReferee(workers, [mallory], max_attempts=1)
    with pytest.raises(TooManyFaults):
        coded_matmul(*operands, scheme, workers, referee=referee)
    assert len(referee.disputes) == scheme.n_nodes
    for d in referee.disputes:
        assert d.resolution is not None and d.referee == "mallory"
        assert d.resolution.honest == [d.suspect] and d.resolution.cheaters == ["mallory"]


def test_a_provider_serving_other_bytes_than_it_committed_is_an_erasure(
        operands: tuple[torch.Tensor, torch.Tensor], honest_product: torch.Tensor) -> None:
    scheme = FaultTolerantStrassen()
    peers: dict[str, LocalPeer] = honest(15, "e")
    peers["tamper"] = TamperingPeer(Provider(key("tamper"), "tamper"))
    run = matmul_on_providers(*operands, matmul_workers(peers, scheme), scheme=scheme)
    assert list(run.run.failed) == [15] and "does not verify" in run.run.failed[15]
    assert run.disputes == []
    torch.testing.assert_close(run.result, honest_product, rtol=1e-5, atol=1e-5)


def test_replicated_baseline_runs_over_providers_too(
        operands: tuple[torch.Tensor, torch.Tensor], honest_product: torch.Tensor) -> None:
    scheme = ReplicatedStrassen(3)
    with pytest.raises(ValueError, match="same sub-product"):
        matmul_workers(honest(7, "r"), scheme)  # every copy of one product on one provider
    peers: dict[str, LocalPeer] = honest(5, "r")
    peers["mallory"] = cheater("mallory-r")  # nodes 5, 11, 17: one copy of three products
    run = matmul_on_providers(*operands, matmul_workers(peers, scheme), scheme=scheme)
    assert scheme.n_nodes == 21 and run.named == ("mallory",)
    torch.testing.assert_close(run.result, honest_product, rtol=1e-5, atol=1e-5)


def test_share_jobs_refuse_what_is_not_a_float_product() -> None:
    from verde.coding.coded_compute import Share

    with pytest.raises(JobSpecError, match="do not multiply"):
        MatmulShares().job(Share(0, (torch.ones(3, 4), torch.ones(5, 2))))
    with pytest.raises(JobSpecError, match="float"):
        MatmulShares().job(Share(1, (torch.ones(3, 4, dtype=torch.int64), torch.ones(4, 2))))
    with pytest.raises(ValueError, match="at least one provider"):
        share_workers(MatmulShares(), {}, 4)
    with pytest.raises(ValueError, match="ProviderShareWorkers"):
        matmul_on_providers(torch.ones(4, 4), torch.ones(4, 4), [object()])  # type: ignore[list-item]


# --- coded inference (BACC / SBACC) ----------------------------------------------------------


@pytest.fixture(scope="module")
def mlp() -> tuple[ServiceModel, torch.Tensor]:
    spec = JobSpec.from_mapping({"program": "mlp", "kind": "infer", "config": {"hidden": 16},
                                 "dataset": {"name": "digits"}, "steps": 1, "batch_size": 12,
                                 "seed": 3})
    ctx = JobContext.from_spec(spec)
    params = ctx.program.initial_parameters(ctx.module, 3)
    batch = ctx.dataset.batch(list(range(12)))["x"]
    return ServiceModel("mlp", params, config={"hidden": 16}), batch




def test_bacc_inference_over_providers_tolerates_a_failed_share(
        mlp: tuple[ServiceModel, torch.Tensor]) -> None:
    model, batch = mlp
    code = BACC(8, 4)
    peers: dict[str, LocalPeer] = honest(7, "b")
    peers["tamper"] = TamperingPeer(Provider(key("tamper-b"), "tamper-b"))
    run = inference_on_providers(model, batch, code, inference_workers(model, peers, code))
    assert list(run.run.failed) == [7] and run.result.shape == (12, 10)
    exact = inference_on_providers(model, batch, BACC(8, 4), inference_workers(
        model, honest(8, "b"), BACC(8, 4))).result
    # an approximation of the model's logits (Berrut), within the scale of the logits
    assert (run.result - exact).abs().max() < exact.abs().max()


def test_sbacc_locates_a_wrong_worker_and_the_dispute_names_it(
        mlp: tuple[ServiceModel, torch.Tensor]) -> None:
    model, batch = mlp
    probe = SBACC(12, 3, 4, tolerance=1.0)
    workers = inference_workers(model, honest(3, "c"), probe)
    clean = inference_on_providers(model, batch, probe, workers)
    answers = {i: w.answers[i].value for i, w in enumerate(workers)}
    code = SBACC(12, 3, 4, tolerance=3 * probe.honest_misfit(answers))
    # mallory takes share 5: mid-interval, where SBACC sees a deviation this small (a share at
    # the ends of [-1, 1] hides more: its report's undetectable_below)
    others = honest(11, "s")
    names = list(others)
    peers = {n: others[n] for n in names[:5]}
    peers["mallory"] = cheater("mallory-s")
    peers.update({n: others[n] for n in names[5:]})
    run = inference_on_providers(model, batch, code, inference_workers(model, peers, code))
    assert run.run.faulty == (5,) and run.named == ("mallory",)
    assert run.run.refereed == {5: True}
    assert torch.equal(run.result, clean.result)  # decoded from the same verified bits
    with pytest.raises(ValueError, match="other jobs"):
        inference_on_providers(model, batch, code, matmul_workers(peers, FaultTolerantStrassen()))
    assert isinstance(workers[0].jobs, InferenceShares)
