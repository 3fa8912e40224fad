"""Escalating flagged requests: a second provider's opinion, then a dispute on mismatch.

A flagged answer is re-run by another provider; if the two answers agree the flag was a false
alarm, otherwise a referee settles between them. The real referee is a verde dispute over a
computation run under ``repops.reproducible()`` (DESIGN.md, section 4); both are being built
alongside this package, so escalation talks to them through two small protocols:

- :class:`SecondOpinion` — ``rerun(inputs) -> outputs`` (softmax rows), e.g. another provider;
- :class:`DisputeOpener` — ``settle(request, answer_a, answer_b) -> verified answer``.

The real, refereed implementation lives in the services layer (``verde.distill`` talks to no
network): ``arbiter.refereed_escalation.RefereedEscalation`` runs the flagged requests as a
verde ``infer`` job on providers and settles a mismatch with a dispute at an arbiter. Whatever
computed them, answers are compared in one form, :func:`answers_from_logits`: the softmax rows
of the model's logits, computed under ``repops.reproducible()``.

The in-process implementations here re-run a trusted copy of the model. They use
``repops.reproducible()`` when the installed repops provides it, so answers can be compared bit
for bit; otherwise they run plain torch in eval mode and compare within a small tolerance,
because vendor kernels may round differently with batch size (see DESIGN.md, section 2).
Under repops the comparison is bit for bit, so an honest provider must also compute its answers
under ``repops.reproducible()``; an answer computed with vendor kernels differs in the last bits
and loses a dispute, as the protocol intends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from verde.distill._checks import check_probabilities, check_same_requests
from verde.distill.errors import DistillArgumentError, NoHonestAnswerError, ShapeMismatchError

PLAIN_TORCH_ATOL = 1e-5


@dataclass(frozen=True)
class InferenceRequest:
    """One request as a referee sees it: its position in the client's stream and its inputs."""

    index: int
    inputs: torch.Tensor


@runtime_checkable
class SecondOpinion(Protocol):
    """Another provider that re-runs requests; returns softmax rows, one per input."""

    def rerun(self, inputs: torch.Tensor) -> torch.Tensor:
        """Answers of this provider to ``inputs``."""
        ...


@runtime_checkable
class DisputeOpener(Protocol):
    """A referee that decides which of two answers to one request is right."""

    def settle(
        self, request: InferenceRequest, answer_a: torch.Tensor, answer_b: torch.Tensor
    ) -> torch.Tensor:
        """The verified answer (one of the two); raises when neither can be verified."""
        ...


def repops_reproducible_available() -> bool:
    """Whether the installed repops offers ``repops.reproducible()``."""
    import repops

    return callable(getattr(repops, "reproducible", None))


@contextlib.contextmanager
def _reproducible(enabled: bool) -> Iterator[None]:
    if enabled:
        import repops

        with repops.reproducible():  # type: ignore[attr-defined]
            yield
    else:
        yield


def answers_from_logits(logits: torch.Tensor, reproducible: bool = True) -> torch.Tensor:
    """The answer a client compares: float32 softmax rows of a model's logits (one per input).

    The one place model outputs become answers, for the in-process runners and for the logits a
    verde inference job commits to alike. Under ``repops.reproducible()`` (the default) the
    softmax runs on a repops kernel, so equal logits give equal answers bit for bit on any
    machine, and an answer can be compared with ``torch.equal``.
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] < 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ShapeMismatchError(f"logits must have shape (batch, classes >= 2), got {shape}")
    with _reproducible(reproducible):
        return torch.softmax(logits.float(), dim=1)


def check_two_answers(answer_a: torch.Tensor, answer_b: torch.Tensor) -> None:
    """Raise unless both answers are softmax rows for the same requests and classes."""
    check_probabilities("answer_a", answer_a)
    check_probabilities("answer_b", answer_b)
    check_same_requests("answer_a", answer_a, "answer_b", answer_b)


def _resolve_reproducible(reproducible: bool | None) -> bool:
    available = repops_reproducible_available()
    if reproducible is None:
        return available
    if reproducible and not available:
        raise DistillArgumentError(
            "reproducible=True needs repops.reproducible(), which this repops does not provide"
        )
    return reproducible


class TrustedModelRunner:
    """Runs a trusted copy of the service model, reproducibly when repops allows it.

    ``reproducible=None`` picks ``repops.reproducible()`` when it exists and plain torch in eval
    mode otherwise; ``atol`` is the tolerance for comparing answers (0 under repops).
    """

    def __init__(self, model: nn.Module, reproducible: bool | None = None) -> None:
        self.model = model
        self.reproducible = _resolve_reproducible(reproducible)
        self.atol = 0.0 if self.reproducible else PLAIN_TORCH_ATOL

    @torch.no_grad()
    def run(self, inputs: torch.Tensor) -> torch.Tensor:
        """Softmax outputs of the trusted model on ``inputs``."""
        was_training = self.model.training
        self.model.eval()
        try:
            with _reproducible(self.reproducible):
                logits = self.model(inputs)
            return answers_from_logits(logits, self.reproducible)
        finally:
            self.model.train(was_training)

    def matches(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        """Whether two answers are the same up to this runner's tolerance."""
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=0.0, atol=self.atol))


class TrustedReplica(TrustedModelRunner):
    """In-process :class:`SecondOpinion`: an honest provider running the agreed model."""

    def rerun(self, inputs: torch.Tensor) -> torch.Tensor:
        """Answers of the trusted copy to ``inputs``."""
        return self.run(inputs)


class ReplayReferee(TrustedModelRunner):
    """In-process :class:`DisputeOpener`: recompute the request and keep the matching answer.

    A stand-in for a verde dispute, which reaches the same verdict by recomputing a single
    operator; this one recomputes the whole (small) forward pass.
    """

    def settle(
        self, request: InferenceRequest, answer_a: torch.Tensor, answer_b: torch.Tensor
    ) -> torch.Tensor:
        """Return whichever answer the recomputation reproduces; raise if neither."""
        check_two_answers(answer_a, answer_b)
        expected = self.run(request.inputs)
        check_same_requests("recomputed answer", expected, "answer_a", answer_a)
        for answer in (answer_a, answer_b):
            if self.matches(expected, answer):
                return answer
        raise NoHonestAnswerError(
            f"request {request.index}: the recomputed answer matches neither provider's answer"
        )
