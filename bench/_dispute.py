"""A timed in-process dispute for the benches: the same few lines every dispute bench needs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from verde.protocol.dispute.driver import DisputeStats, run_dispute
from verde.protocol.dispute.state import DisputeState
from verde.protocol.dispute.verdict import Verdict
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.protocol import ProviderPeer


@dataclass(frozen=True)
class TimedDispute:
    """A dispute's verdict, what it moved (``DisputeStats``) and its wall seconds."""

    verdict: Verdict
    stats: DisputeStats
    seconds: float


def timed_dispute(spec: JobSpec, peers: Mapping[str, ProviderPeer]) -> TimedDispute:
    """Run the dispute between ``peers["a"]`` and ``peers["b"]`` (both already ran ``spec``),
    timing it from reading their signed results to the verdict."""
    stats = DisputeStats()
    t = time.perf_counter()
    state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    verdict = run_dispute(state, peers, stats=stats)
    return TimedDispute(verdict, stats, time.perf_counter() - t)
