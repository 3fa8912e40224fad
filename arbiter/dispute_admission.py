"""What an arbiter checks before it opens a dispute: its budget, its store's bound, and the
opener's quota — all before the dispute is stored or any tensor is allocated.

Why at the arbiter too: a dispute makes the arbiter replay one step of the job on shape-only
tensors and recompute one operator, so a spec with absurd shapes costs the arbiter as much as a
job costs a provider. The arbiter therefore estimates the job's cost from the spec
(``verde.protocol.graph.budget.estimate_cost``, checked against its ``Budget``: parameters,
state bytes, bytes and FLOPs of one step), refuses with RESOURCE_EXHAUSTED naming the limit,
and charges the opener one step's FLOPs (what its dispute costs this arbiter) against the
opener's quota. Open disputes are bounded per client (``--max-client-disputes``) and in total
(``--max-open-disputes``, counted in the shared database, so every arbiter process on it
sees the same number). The first opener's name is stored with the dispute (``opened_by``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from arbiter.client_quotas import ClientQuotas, QuotaLimits
from arbiter.engine import ArbiterEngine, OpenedDispute
from arbiter.errors import NotFound, QuotaExceeded
from arbiter.logs import log_event
from arbiter.storage.store import ACTIVE
from verde.protocol.graph.budget import Budget, estimate_cost
from verde.protocol.jobs.spec import JobSpec

log = logging.getLogger("verde.arbiter")
#: Disputes an arbiter's database may hold open at once, by default.
DEFAULT_MAX_OPEN_DISPUTES = 1000


class DisputeAdmission:
    """Opens disputes on ``engine`` for a client, within the limits (see the module doc)."""

    def __init__(self, engine: ArbiterEngine, budget: Budget | None = None, *,
                 quotas: QuotaLimits | None = None,
                 max_open: int | None = DEFAULT_MAX_OPEN_DISPUTES) -> None:
        self.engine = engine
        self.budget = budget or Budget()
        self.max_open = max_open
        self.quotas = ClientQuotas(quotas or QuotaLimits(), self._active, what="disputes",
                                   flags=("--max-client-disputes", "--max-client-flops"))

    def _active(self, dispute_id: str) -> bool:
        try:
            return self.engine.store.dispute(dispute_id).status in ACTIVE
        except NotFound:
            return False

    def open(self, spec: Mapping[str, Any], entries: Sequence[tuple[str, ...]],
             client: str) -> OpenedDispute:
        job = JobSpec.from_mapping(spec)
        self.quotas.check_room(client)
        if self.max_open is not None:
            counts = self.engine.store.dispute_counts()
            held = sum(n for status, n in counts.items() if status in ACTIVE)
            if held >= self.max_open:
                raise QuotaExceeded(f"this arbiter holds {held} open disputes, its limit "
                                    f"(--max-open-disputes {self.max_open}): try later")
        cost = estimate_cost(job, self.budget)  # BudgetExceeded before anything is stored
        # Logged before the dispute exists: its "dispute.opened" line comes first, as always.
        log_event(log, logging.INFO, "client.dispute",
                  f"dispute over job {job.job_id[:16]} requested by {client[:16]}",
                  job_id=job.job_id, client=client, step_flops=cost.step_flops)
        token = f"opening:{uuid.uuid4().hex}"
        self.quotas.reserve(client, token, cost.step_flops)
        try:
            opened = self.engine.open_dispute(spec, entries)
        except BaseException:
            self.quotas.cancel(client, token, cost.step_flops)
            raise
        self.quotas.confirm(client, token, opened.dispute_id)
        self.engine.store.set_opener(opened.dispute_id, client)
        return opened
