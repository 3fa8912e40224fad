"""Refereed escalation over real gRPC services on 127.0.0.1: flagged requests re-run as a verde
``infer`` job on a second provider, a mismatch settled by a dispute at an arbiter, and the
distill guard escalating through it end to end on digits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from arbiter.arbiter_app import start_arbiter
from arbiter.errors import ArbiterInputError
from arbiter.provider_app import start_provider
from arbiter.refereed_escalation import RefereedEscalation
from proofs import SigningKey
from tests.e2e.relay import ProviderRelay
from verde.distill.attacks import top2_swap
from verde.distill.data import DigitsSplits, load_digit_splits
from verde.distill.detector import DivergenceDetector
from verde.distill.distillation import DistilledVerifier
from verde.distill.errors import DistillArgumentError, EscalationError, NoHonestAnswerError
from verde.distill.escalation import InferenceRequest, TrustedReplica
from verde.distill.guard import VerifiedInference
from verde.distill.models import build_mlp, predict_probs, train_classifier
from verde.integration.refereed_inference import ServiceModel
from verde.protocol.jobs.registry import get_program

#: Flips the sign of the largest element of the first linear layer's output in step 1 of every
#: job: an inference job's committed outputs change, and a dispute catches it.
CHEAT = "compute=corrupt_op,step=1,node=1"
#: Flips the sign of the largest logit (the last addmm of the mlp's step graph) instead.
LATE_CHEAT = "compute=corrupt_op,step=1,node=4"
CONFIG = {"hidden": 32}


def _key(tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.pem"
    SigningKey.from_seed(name.encode().ljust(32, b"\0")).save(path, overwrite=True)
    return path


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two honest providers, two cheating, and an arbiter on SQLite (one worker)."""
    tmp = tmp_path_factory.mktemp("refereed")
    providers = {name: start_provider(_key(tmp, name), "127.0.0.1:0", fault=fault)
                 for name, fault in (("honest", None), ("honest2", None), ("cheat", CHEAT),
                                           ("late_cheat", LATE_CHEAT))}
    arb = start_arbiter(_key(tmp, "arbiter"), "127.0.0.1:0", f"sqlite:///{tmp / 'arb.db'}",
                        workers=1)
    try:
        yield {**{n: f"127.0.0.1:{p.port}" for n, p in providers.items()},
               "arbiter": f"127.0.0.1:{arb.port}"}
    finally:
        arb.shutdown()
        for running in providers.values():
            running.close(0)


@pytest.fixture(scope="module")
def digits() -> DigitsSplits:
    return load_digit_splits(seed=0)


@pytest.fixture(scope="module")
def service(digits: DigitsSplits) -> tuple[nn.Module, ServiceModel]:
    """The service: verde's ``mlp`` program trained on digits with plain torch (so its weights
    differ by machine; every comparison below is between repops runs of the same weights)."""
    fields = {"x": ((64,), torch.float32), "y": ((), torch.int64)}
    program = get_program("mlp")
    torch.manual_seed(0)
    mlp = program.build(program.normalize_config(dict(CONFIG)), fields)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_classifier(mlp, digits.train.x.flatten(1), digits.train.y, epochs=30, lr=1e-2,
                         augment=False)
    finally:
        torch.set_num_threads(threads)
    model = ServiceModel("mlp", {n: p.detach().clone() for n, p in mlp.named_parameters()},
                         config=CONFIG)
    return nn.Sequential(nn.Flatten(), mlp).eval(), model


def _honest(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An honest service's answers: the model under repops.reproducible()."""
    return TrustedReplica(module, reproducible=True).rerun(x)


def _escalation(services: dict[str, str], model: ServiceModel, second: str,
                challenger: str) -> RefereedEscalation:
    return RefereedEscalation(model, second_opinion=services[second],
                              challengers=[services[challenger]], arbiter=services["arbiter"],
                              job_timeout_s=120, dispute_timeout_s=120)


def test_an_honest_pair_agrees_without_a_dispute(services: dict[str, str], service: Any,
                                                 digits: DigitsSplits) -> None:
    module, model = service
    x = digits.test.x[:6]
    honest = _honest(module, x)
    with _escalation(services, model, "honest", "honest2") as esc:
        second = esc.rerun(x)
        assert second.dtype == torch.float32 and torch.equal(second, honest)  # bit for bit
        wrong = torch.roll(honest[2:3], 1, dims=1)
        request = InferenceRequest(2, x[2:3])
        assert esc.settle(request, wrong, honest[2:3]) is not wrong
        assert torch.equal(esc.settle(request, wrong, honest[2:3]), honest[2:3])
        settled = esc.settlements[0]
        assert settled.dispute_ids == [] and settled.cheaters == []
        assert sorted(settled.honest) == sorted([services["honest"], services["honest2"]])
        with pytest.raises(DistillArgumentError, match=r"answer_a is torch\.float64"):
            esc.settle(request, honest[2:3].double(), honest[2:3])
        # Two wrong answers: the refereed answer is neither.
        with pytest.raises(NoHonestAnswerError, match=r"request 2: .* matches neither"):
            esc.settle(request, wrong, torch.roll(honest[2:3], 2, dims=1))


def test_a_cheating_second_opinion_loses_its_dispute(services: dict[str, str], service: Any,
                                                     digits: DigitsSplits) -> None:
    module, model = service
    x = digits.test.x[6:12]
    honest = _honest(module, x)
    with _escalation(services, model, "cheat", "honest") as esc:
        cheated = esc.rerun(x)
        differs = [i for i in range(len(x)) if not torch.equal(cheated[i], honest[i])]
        assert differs, "the fault changed no answer"
        i = differs[0]
        request = InferenceRequest(40 + i, x[i:i + 1])
        got = esc.settle(request, honest[i:i + 1], cheated[i:i + 1])
        assert torch.equal(got, honest[i:i + 1])
        settled = esc.settlements[-1]
        assert settled.cheaters == [services["cheat"]] == esc.cheaters
        assert settled.honest == [services["honest"]]
        assert len(settled.dispute_ids) == 1
        status = esc.arbiter.status(settled.dispute_ids[0])
        assert status.status == "decided"
        assert json.loads(status.verdict_json)["reason"] == "recomputed_operator"
        # A second row of the same job is settled on the same job: no new dispute.
        j = next((k for k in range(len(x)) if k != i), i)
        esc.settle(InferenceRequest(40 + j, x[j:j + 1]), honest[j:j + 1], cheated[j:j + 1])
        assert esc.settlements[-1].dispute_ids == settled.dispute_ids


def test_two_cheaters_leave_no_honest_answer(services: dict[str, str], service: Any,
                                             digits: DigitsSplits) -> None:
    """A dispute only ranks its two parties: between two cheaters the one that deviated first
    loses and the other's answer is neither the honest one nor the loser's, so nothing is
    verified (the referee is as good as its challengers)."""
    module, model = service
    x = digits.test.x[12:13]
    honest = _honest(module, x)
    with _escalation(services, model, "cheat", "late_cheat") as esc:
        cheated = esc.rerun(x)
        assert not torch.equal(cheated, honest)
        with pytest.raises(NoHonestAnswerError, match=r"request 5: .* matches neither"):
            esc.settle(InferenceRequest(5, x), honest, cheated)
        settled = esc.settlements[-1]
        assert settled.cheaters == [services["cheat"]]
        assert settled.honest == [services["late_cheat"]]
        assert settled.verified is not None and not torch.equal(settled.verified, honest)


def test_the_guard_escalates_through_the_referee(services: dict[str, str], service: Any,
                                                 digits: DigitsSplits) -> None:
    """Fides' client on digits: a service that swaps its top two classes on some requests is
    flagged, the flagged requests re-run on an honest provider, and the mismatch refereed
    against a cheating challenger, which the dispute names; the caller gets the honest
    answers."""
    module, model = service
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        student = build_mlp((32,), seed=0)
        labels = predict_probs(module, digits.train.x).argmax(1)
        train_classifier(student, digits.train.x, labels, epochs=30, lr=1e-2, augment=False)
    finally:
        torch.set_num_threads(threads)
    verifier = DistilledVerifier(student, trained=True)
    detector = DivergenceDetector("cross_entropy").calibrate(
        _honest(module, digits.calib.x), verifier.probs(digits.calib.x), 0.05)
    x = digits.test.x[:24]
    honest = _honest(module, x)
    served = honest.clone()
    served[::3] = top2_swap(honest[::3], torch.Generator().manual_seed(0))
    with _escalation(services, model, "honest", "cheat") as esc:
        guard = VerifiedInference(verifier, detector, second_opinion=esc, dispute=esc)
        checked = guard.check(x, served)
    flagged = checked.flags.nonzero().flatten().tolist()
    tampered = [i for i in flagged if i % 3 == 0]
    assert tampered, "the detector flagged none of the tampered answers"
    assert checked.escalated == flagged
    assert checked.overturned == tampered  # clean answers that were flagged are upheld
    assert torch.equal(checked.answers[flagged], honest[flagged])
    assert esc.cheaters == [services["cheat"]]
    assert all(len(s.dispute_ids) == 1 for s in esc.settlements)
    assert len({s.job_id for s in esc.settlements}) == 1  # one job for the flagged batch


def test_bad_settings_and_an_unreachable_provider(services: dict[str, str], service: Any,
                                                digits: DigitsSplits) -> None:
    _, model = service
    with pytest.raises(ArbiterInputError, match="challengers"):
        RefereedEscalation(model, second_opinion=services["honest"], challengers=[],
                           arbiter=services["arbiter"])
    with pytest.raises(ArbiterInputError, match="list of provider addresses"):
        RefereedEscalation(model, second_opinion=services["honest"],
                           challengers=services["honest2"], arbiter=services["arbiter"])
    with pytest.raises(ArbiterInputError, match="distinct"):
        RefereedEscalation(model, second_opinion=services["honest"],
                           challengers=[services["honest"]], arbiter=services["arbiter"])
    with pytest.raises(ArbiterInputError, match="ServiceModel"):
        RefereedEscalation(object(), second_opinion=services["honest"],  # type: ignore[arg-type]
                           challengers=[services["honest2"]], arbiter=services["arbiter"])
    params = {n: t.clone() for n, t in model.parameters.items()}
    changing = ServiceModel("mlp", params, config=CONFIG)
    x = digits.test.x[30:32]
    with _escalation(services, changing, "honest", "honest2") as esc:
        answers = esc.rerun(x)
        params["2.bias"] += 1.0  # the caller retrained the service under the escalation's feet
        with pytest.raises(EscalationError, match="the service model changed"):
            esc.settle(InferenceRequest(0, x[:1]), answers[:1], answers[:1])
    with RefereedEscalation(model, second_opinion="127.0.0.1:1",
                            challengers=[services["honest"]],
                            arbiter=services["arbiter"]) as esc, \
            pytest.raises(EscalationError, match=r"second opinion from 127\.0\.0\.1:1"):
        esc.rerun(digits.test.x[:2])


def test_a_result_nobody_else_returned_overturns_nothing(services: dict[str, str],
                                                       service: Any,
                                                       digits: DigitsSplits) -> None:
    """The challenger takes the job but withholds its result (a relay in front of it drops
    GetResult): the second opinion's answer alone was never refereed, so settling raises
    instead of overturning the service's answer."""
    module, model = service
    x = digits.test.x[40:42]
    withholding = ProviderRelay(dropped=frozenset({"GetResult"}))
    withholding.forward_to(services["honest2"])
    try:
        with RefereedEscalation(model, second_opinion=services["honest"],
                                challengers=[withholding.address],
                                arbiter=services["arbiter"], job_timeout_s=120,
                                dispute_timeout_s=120) as esc:
            second = esc.rerun(x)
            with pytest.raises(EscalationError, match="nothing could be refereed") as info:
                esc.settle(InferenceRequest(0, x[:1]), torch.flip(second[:1], dims=[1]),
                           second[:1])
    finally:
        withholding.close()
    assert withholding.address in str(info.value)
    assert esc.settlements == []
    assert torch.equal(second, _honest(module, x))
