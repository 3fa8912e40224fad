"""Refereed escalation against real ``verde`` processes on 127.0.0.1: each provider keeps the
uploaded dataset and parameters in its own process (nothing shared with the client, unlike
the in-process services of ``tests/arbiter``), a cheating second opinion loses its dispute and
the honest answer comes back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from arbiter.refereed_escalation import RefereedEscalation
from tests.e2e.procs import Cluster, Service
from verde.distill.escalation import InferenceRequest, TrustedReplica
from verde.integration.refereed_inference import ServiceModel
from verde.protocol.jobs.registry import get_program

pytestmark = pytest.mark.slow

CHEAT = "compute=corrupt_op,step=1,node=1"


@pytest.fixture(scope="module")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Service]]:
    cluster = Cluster(tmp_path_factory.mktemp("refereed-procs"))
    try:
        yield cluster.start_three_providers_and_arbiter(CHEAT)
    finally:
        cluster.stop_all()


def test_a_cheating_second_opinion_loses_to_a_separate_honest_process(
        procs: list[Service]) -> None:
    p1, p2, cheat, arb = procs
    program = get_program("mlp")
    torch.manual_seed(3)
    mlp = program.build(program.normalize_config({"hidden": 16}),
                        {"x": ((64,), torch.float32), "y": ((), torch.int64)})
    model = ServiceModel("mlp", {n: p.detach().clone() for n, p in mlp.named_parameters()},
                         config={"hidden": 16})
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    honest = TrustedReplica(torch.nn.Sequential(torch.nn.Flatten(), mlp),
                            reproducible=True).rerun(x)
    with RefereedEscalation(model, second_opinion=p1.address, challengers=[p2.address],
                            arbiter=arb.address, job_timeout_s=300) as esc:
        assert torch.equal(esc.rerun(x), honest)
    with RefereedEscalation(model, second_opinion=cheat.address, challengers=[p1.address],
                            arbiter=arb.address, job_timeout_s=300,
                            dispute_timeout_s=300) as esc:
        cheated = esc.rerun(x)
        i = next(r for r in range(len(x)) if not torch.equal(cheated[r], honest[r]))
        got = esc.settle(InferenceRequest(i, x[i:i + 1]), cheated[i:i + 1], honest[i:i + 1])
        assert torch.equal(got, honest[i:i + 1])
        assert esc.cheaters == [cheat.address]
        assert esc.settlements[0].honest == [p1.address]
        assert esc.arbiter.status(esc.settlements[0].dispute_ids[0]).status == "decided"
