"""Escalation: flagged answers are re-run and disputed; the caller gets the honest answer."""

from __future__ import annotations

import pytest
import torch

from verde.distill.detector import DivergenceDetector
from verde.distill.digits import DigitsSetup
from verde.distill.errors import DistillArgumentError, NoHonestAnswerError, ShapeMismatchError
from verde.distill.escalation import (
    DisputeOpener,
    InferenceRequest,
    ReplayReferee,
    SecondOpinion,
    TrustedReplica,
    answers_from_logits,
    repops_reproducible_available,
)
from verde.distill.guard import VerifiedInference
from verde.distill.models import predict_probs


def _honest(digits: DigitsSetup, x: torch.Tensor) -> torch.Tensor:
    """What an honest provider answers: the agreed model run under repops when repops offers
    ``reproducible()`` (as the protocol requires), plain torch in eval mode otherwise."""
    return TrustedReplica(digits.service).rerun(x)


def _guard(digits: DigitsSetup, **kwargs: object) -> VerifiedInference:
    return VerifiedInference(
        digits.verifier,
        digits.detector,
        reclassifier=digits.reclassifier,
        second_opinion=TrustedReplica(digits.service),
        dispute=ReplayReferee(digits.service),
        **kwargs,  # type: ignore[arg-type]
    )


def test_in_process_implementations_satisfy_the_protocols(digits: DigitsSetup) -> None:
    assert isinstance(TrustedReplica(digits.service), SecondOpinion)
    assert isinstance(ReplayReferee(digits.service), DisputeOpener)
    replica = TrustedReplica(digits.service)
    assert replica.reproducible == repops_reproducible_available()
    assert replica.atol == (0.0 if replica.reproducible else 1e-5)


@pytest.mark.parametrize("name", ["top2_swap", "top2_average", "random_label_switch"])
@pytest.mark.usefixtures("one_thread")
def test_escalation_returns_honest_answer_when_service_cheats(
    digits: DigitsSetup, attacks: dict, name: str
) -> None:
    x = digits.splits.test.x[:60]
    honest = _honest(digits, x)
    cheating = attacks[name].serve(x, honest, torch.Generator().manual_seed(0))
    checked = _guard(digits).check(x, cheating)
    flagged = checked.flags
    assert float(flagged.float().mean()) >= 0.8  # rates on all 450 requests: test_attacks.py
    # Every flagged request was escalated and its cheating answer overturned.
    assert checked.escalated == flagged.nonzero().flatten().tolist()
    assert checked.overturned == checked.escalated
    assert torch.equal(checked.answers[flagged], honest[flagged])
    assert torch.equal(checked.estimates[flagged], honest[flagged].argmax(1))


@pytest.mark.usefixtures("one_thread")
def test_false_alarms_keep_the_service_answer(digits: DigitsSetup) -> None:
    # At 1% the deployed detector may raise no false alarm on these 450 clean requests, so
    # this check uses the same statistic calibrated at 5%, which surely raises some.
    x = digits.splits.test.x
    honest = _honest(digits, x)
    calib = digits.splits.calib.x
    loose = DivergenceDetector(digits.detector.statistic).calibrate(
        predict_probs(digits.service, calib), digits.verifier.probs(calib), 0.05
    )
    guard = VerifiedInference(
        digits.verifier,
        loose,
        reclassifier=digits.reclassifier,
        second_opinion=TrustedReplica(digits.service),
        dispute=ReplayReferee(digits.service),
    )
    checked = guard.check(x, honest)
    assert checked.flags.any()  # some false alarms were escalated and upheld
    assert checked.overturned == []
    assert torch.equal(checked.answers, honest)
    assert torch.equal(checked.estimates, honest.argmax(1))


def test_without_escalation_flagged_answers_get_reclassified(
    digits: DigitsSetup, attacks: dict
) -> None:
    x, y = digits.splits.test.x[:200], digits.splits.test.y[:200]
    honest = predict_probs(digits.service, x)
    cheating = attacks["top2_swap"].serve(x, honest, torch.Generator().manual_seed(0))
    checked = VerifiedInference(
        digits.verifier, digits.detector, reclassifier=digits.reclassifier
    ).check(x, cheating)
    assert checked.escalated == []
    flagged = checked.flags
    assert float((checked.estimates[flagged] == y[flagged]).float().mean()) >= 0.94


@pytest.mark.usefixtures("one_thread")
def test_referee_rejects_two_wrong_answers(digits: DigitsSetup) -> None:
    x = digits.splits.test.x[:1]
    honest = _honest(digits, x)
    wrong = torch.roll(honest, 1, dims=1)
    referee = ReplayReferee(digits.service)
    assert torch.equal(referee.settle(InferenceRequest(0, x), wrong, honest), honest)
    with pytest.raises(NoHonestAnswerError, match="request 7"):
        referee.settle(InferenceRequest(7, x), wrong, torch.roll(honest, 2, dims=1))


class _CountingSecondOpinion:
    """A user-supplied second provider (pluggable: any object with rerun)."""

    def __init__(self, inner: TrustedReplica) -> None:
        self.inner, self.calls = inner, 0

    def rerun(self, inputs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner.rerun(inputs)


@pytest.mark.usefixtures("one_thread")
def test_pluggable_second_opinion(digits: DigitsSetup, attacks: dict) -> None:
    x = digits.splits.test.x[:30]
    honest = _honest(digits, x)
    cheating = attacks["random_label_switch"].serve(x, honest, torch.Generator().manual_seed(1))
    second = _CountingSecondOpinion(TrustedReplica(digits.service))
    guard = VerifiedInference(
        digits.verifier,
        digits.detector,
        second_opinion=second,
        dispute=ReplayReferee(digits.service),
    )
    checked = guard.check(x, cheating)
    assert second.calls == 1 and checked.overturned


def test_escalation_arguments(digits: DigitsSetup) -> None:
    with pytest.raises(DistillArgumentError, match="both"):
        VerifiedInference(
            digits.verifier, digits.detector, second_opinion=TrustedReplica(digits.service)
        )
    with pytest.raises(DistillArgumentError, match="rerun"):
        VerifiedInference(
            digits.verifier,
            digits.detector,
            second_opinion=object(),  # type: ignore[arg-type]
            dispute=ReplayReferee(digits.service),
        )
    guard = _guard(digits)
    x = digits.splits.test.x[:4]
    with pytest.raises(DistillArgumentError, match="inputs"):
        guard.check(x, predict_probs(digits.service, digits.splits.test.x[:5]))
    with pytest.raises(DistillArgumentError, match="service_probs"):
        guard.check(x, torch.randn(4, 10))
    if not repops_reproducible_available():
        with pytest.raises(DistillArgumentError, match="repops"):
            TrustedReplica(digits.service, reproducible=True)


def test_answers_from_logits_are_softmax_rows_bit_for_bit() -> None:
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    answers = answers_from_logits(logits)
    assert answers.dtype == torch.float32 and answers.shape == (4, 10)
    assert torch.equal(answers, answers_from_logits(logits.clone()))
    torch.testing.assert_close(answers, torch.softmax(logits.float(), 1), rtol=0, atol=1e-6)
    with pytest.raises(ShapeMismatchError, match=r"logits must have shape \(batch"):
        answers_from_logits(torch.randn(4))
    with pytest.raises(ShapeMismatchError, match="logits"):
        answers_from_logits(torch.randn(4, 1))
