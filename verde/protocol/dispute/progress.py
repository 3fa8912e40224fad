"""What a dispute has established so far, as typed fields (the phases read and extend it).

Everything here is derived by replaying the dispute's transcript; nothing is stored on its own
(``verde.protocol.dispute.state`` stores the opening and the event log only). The arbiter's
shape-only replay of the disputed step (``expected``) is a pure function of the spec and the
step, recomputed on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proofs import Descent
from repops import TraceNode
from repops.dispatch.encoding import RefKey
from verde.protocol.dispute.checks import CheckedInput
from verde.protocol.dispute.verdict import Verdict
from verde.protocol.graph.execution import expected_structure
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.spec import JobSpec


@dataclass
class DisputeProgress:
    """The dispute's findings: from the opening (signers, step roots) down to the one node."""

    spec: JobSpec
    #: Party -> the hex public key its result is signed with (and every answer must be).
    keys: dict[str, str]
    #: Party -> the root of its step tree (its signed result).
    step_roots: dict[str, bytes]
    phase: str = "step_descent"
    descent: Descent | None = None
    step: int | None = None
    prev_root: bytes | None = None
    claimed: dict[str, bytes] = field(default_factory=dict)
    graph_roots: dict[str, bytes] = field(default_factory=dict)
    node: int | None = None
    nodes: dict[str, TraceNode] = field(default_factory=dict)
    inputs: dict[str, dict[RefKey, CheckedInput]] = field(default_factory=dict)
    #: An offline verifier without bundled tensors takes the recomputed digests from the
    #: arbiter's signed ruling.
    trusted_recomputation: tuple[bytes, ...] | None = None
    verdict: Verdict | None = None
    _expected: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.verdict is not None

    def finish(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.phase = "done"

    def expected(self) -> list[dict[str, Any]]:
        """The arbiter's own shape-only replay of the disputed step (cached, not stored)."""
        if self._expected is None:
            if self.step is None:
                raise AssertionError("the disputed step is not known yet")
            self._expected = expected_structure(JobContext.from_spec(self.spec), self.step)
        return self._expected

    def expected_node(self, index: int) -> TraceNode:
        """Node ``index`` of the arbiter's replay (its structure; no output digests)."""
        return TraceNode.from_json({**self.expected()[index], "output_digests": []})
