"""Fault plans: how a cheating provider deviates, as data (JSON-able, seeded).

A plan has at most one *compute* fault (what it computes or claims differs from the job) and
at most one *answer* fault (how it misbehaves in a dispute). Answer faults only matter once a
dispute is open, so they are paired with a compute fault; a plan with an answer fault and no
compute fault is an honest computation and can never be disputed.

Compute faults:
* ``corrupt_op``     — one flipped bit (the sign of the largest-magnitude element) in the output
  of op ``node`` of step ``step`` (with ``op``: of the first op of that name from ``node`` on,
  e.g. a dropout mask's ``aten.bernoulli_.float``), applied consistently in the run and in
  replays;
* ``corrupt_state``  — one flipped bit in a parameter after step ``step`` (graph left honest);
* ``wrong_final``    — honest run, but the signed result reports another final digest;
* ``skip_step``      — step ``step`` is not executed (its state is the previous one);
* ``reorder_steps``  — steps ``step`` and ``step + 1`` are run with each other's batches;
* ``wrong_data``     — step ``step`` is run on other samples (substituted inputs);
* ``wrong_init``     — one flipped bit in the initial parameters (state 0).

Generate jobs have their own compute faults (``GENERATE_FAULTS``: a quantised or cheaper
model, a wrong sample, truncation, a changed prompt, a tampered cache), described in
``verde.protocol.faults.generation``.

Answer faults (``query`` names the query kind they hit, default chosen per fault):
* ``lie_children``   — descent answers with children that do not hash to the committed parent;
* ``equivocate``     — a second delivery of the same query gets a different signed answer;
* ``refuse``         — no answer to that query kind (a missed deadline);
* ``wrong_input``    — a node input tensor with altered bytes but the committed digest claimed;
* ``substitute_input`` — an altered input tensor whose (different) digest is claimed;
* ``wrong_graph_count`` — the graph commitment claims one node more than the graph has;
* ``insert_node`` / ``drop_node`` — the step graph has an extra / a missing node;
* ``swap_nodes``     — two consecutive nodes of the step graph are swapped (same count);
* ``wrong_op``       — a node of the graph names another op (the tree is consistent with it).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from verde.errors import VerdeInputError

COMPUTE_FAULTS = ("corrupt_op", "corrupt_state", "wrong_final", "skip_step", "reorder_steps",
                  "wrong_data", "wrong_init")  # fmt: skip
#: Compute faults of generate jobs (``verde.protocol.faults.generation``).
GENERATE_FAULTS = ("quantised_model", "cheaper_model", "wrong_sample", "truncate",
                   "changed_prompt", "tampered_cache")
ANSWER_FAULTS = (
    "lie_children", "equivocate", "refuse", "wrong_input", "substitute_input",
    "wrong_graph_count", "insert_node", "drop_node", "swap_nodes", "wrong_op",
)  # fmt: skip
_DEFAULT_QUERY = {
    "lie_children": "graph_children",
    "equivocate": "graph_children",
    "refuse": "node_inputs",
}


class FaultPlanError(VerdeInputError):
    """A fault plan names an unknown fault or an impossible step."""


@dataclass(frozen=True)
class FaultPlan:
    """What a cheating provider does differently. ``None`` fields are chosen from ``seed``."""

    compute: str | None = "corrupt_op"
    step: int | None = None
    node: int | None = None
    answer: str | None = None
    query: str | None = None
    seed: int = 0
    op: str | None = None

    def __post_init__(self) -> None:
        if self.op is not None and (self.compute != "corrupt_op" or not self.op):
            raise FaultPlanError("a fault plan names an op only for compute=corrupt_op")
        known = (*COMPUTE_FAULTS, *GENERATE_FAULTS)
        if self.compute is not None and self.compute not in known:
            raise FaultPlanError(f"unknown compute fault {self.compute!r}; known: {known}")
        if self.answer is not None and self.answer not in ANSWER_FAULTS:
            raise FaultPlanError(f"unknown answer fault {self.answer!r}; known: {ANSWER_FAULTS}")
        if self.step is not None and self.step < 1:
            raise FaultPlanError(f"fault step must be >= 1, got {self.step}")

    def resolved(self, n_steps: int) -> FaultPlan:
        """This plan with the step (and the node, as a fraction) fixed from the seed."""
        rng = random.Random(self.seed)
        last = n_steps - 1 if self.compute == "reorder_steps" else n_steps
        step = self.step if self.step is not None else rng.randint(1, max(1, last))
        node = self.node if self.node is not None else rng.randrange(1 << 30)
        query = self.query or _DEFAULT_QUERY.get(self.answer or "")
        return FaultPlan(self.compute, min(step, max(1, last)), node, self.answer, query,
                         self.seed, self.op)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        return cls(**data)


def random_plan(rng: random.Random, seed: int) -> FaultPlan:
    """A seeded random plan for campaigns: mostly corrupted ops (optionally with a misbehaving
    answer on a random query kind), sometimes another compute fault."""
    compute = rng.choice([*COMPUTE_FAULTS, "corrupt_op", "corrupt_op", "corrupt_op"])
    answer = rng.choice([None, None, *ANSWER_FAULTS]) if compute == "corrupt_op" else None
    query = None
    if answer in ("lie_children", "equivocate"):
        query = rng.choice(["step_children", "graph_children"])
    elif answer == "refuse":
        query = rng.choice(["step_children", "step_leaves", "graph_commit", "graph_children",
                            "graph_leaves", "node_inputs"])
    return FaultPlan(compute=compute, answer=answer, query=query, seed=seed)


def catalogue() -> list[FaultPlan]:
    """One plan per fault in the catalogue (answer faults paired with ``corrupt_op``)."""
    plans = [FaultPlan(compute=c) for c in COMPUTE_FAULTS]
    plans += [FaultPlan(compute="corrupt_op", answer=a) for a in ANSWER_FAULTS]
    plans += [FaultPlan(compute="corrupt_op", answer="lie_children", query="step_children"),
              FaultPlan(compute="corrupt_op", answer="equivocate", query="step_children"),
              FaultPlan(compute="corrupt_op", answer="refuse", query="graph_commit")]  # fmt: skip
    return plans
