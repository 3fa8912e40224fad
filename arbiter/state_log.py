"""The services' log lines: one per dispute or job state change, with the ids to follow it.

Every dispute line carries ``dispute_id`` (and the phase and round where they mean
something), every job line ``job_id``, so ``grep``/``jq`` on one id shows the whole story of a
dispute across claims, hand-overs and arbiters. Answers are DEBUG (many per dispute); phase
changes, claims, hand-overs and verdicts INFO; a party's missed deadline and a lost lease
WARNING; a dispute or job that could not proceed ERROR.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from arbiter.logs import log_event
from arbiter.observers import DisputeObserver, JobObserver

arbiter_log = logging.getLogger("verde.arbiter")
provider_log = logging.getLogger("verde.provider")


class DisputeLog(DisputeObserver):
    def __init__(self, logger: logging.Logger = arbiter_log) -> None:
        self.log = logger

    def opened(self, dispute_id: str, job_id: str) -> None:
        log_event(self.log, logging.INFO, "dispute.opened", "dispute opened",
                  dispute_id=dispute_id, job_id=job_id)

    def claimed(self, dispute_id: str, job_id: str, phase: str, rounds: int) -> None:
        log_event(self.log, logging.INFO, "dispute.claimed",
                  "dispute resumed" if rounds else "dispute claimed",
                  dispute_id=dispute_id, job_id=job_id, phase=phase, round=rounds)

    def advanced(self, dispute_id: str, event: Mapping[str, Any], phase_before: str,
                 phase: str, rounds: int) -> None:
        kind = str(event.get("type"))
        fields = {"dispute_id": dispute_id, "phase": phase_before, "round": event.get("round"),
                  "party": event.get("party")}
        if kind == "timeout":
            log_event(self.log, logging.WARNING, "dispute.timeout",
                      "party missed its deadline", **fields)
        else:
            log_event(self.log, logging.DEBUG, "dispute.answer", "answer committed", **fields)
        if phase not in (phase_before, "done"):
            log_event(self.log, logging.INFO, "dispute.phase", f"dispute entered {phase}",
                      dispute_id=dispute_id, phase=phase, round=rounds)

    def finished(self, dispute_id: str, status: str, verdict: Mapping[str, Any] | None,
                 error: str | None) -> None:
        if status == "decided" and verdict is not None:
            winner = verdict.get("winner")
            log_event(self.log, logging.INFO, "dispute.decided", "dispute decided",
                      dispute_id=dispute_id, phase="done", winner=winner,
                      winner_key=dict(verdict.get("keys", {})).get(winner or ""),
                      losers=list(verdict.get("losers", ())), reason=verdict.get("reason"))
        elif status == "unreachable":
            log_event(self.log, logging.WARNING, "dispute.unreachable",
                      "dispute stopped: a party could not be reached where it vouched "
                      "(no verdict; opening it again resumes it)",
                      dispute_id=dispute_id, error=error)
        else:
            log_event(self.log, logging.ERROR, "dispute.failed", "dispute failed",
                      dispute_id=dispute_id, error=error)

    def released(self, dispute_id: str, phase: str, rounds: int) -> None:
        log_event(self.log, logging.INFO, "dispute.released",
                  "dispute handed over (draining)", dispute_id=dispute_id, phase=phase,
                  round=rounds)

    def lease_lost(self, dispute_id: str) -> None:
        log_event(self.log, logging.WARNING, "dispute.lease_lost",
                  "dispute taken over by another arbiter", dispute_id=dispute_id)


class JobLog(JobObserver):
    def __init__(self, logger: logging.Logger = provider_log) -> None:
        self.log = logger

    def accepted(self, job_id: str, program: str, steps: int) -> None:
        log_event(self.log, logging.INFO, "job.accepted", "job accepted", job_id=job_id,
                  program=program, steps=steps)

    def refused(self, reason: str, detail: str) -> None:
        log_event(self.log, logging.INFO, "job.refused", "job refused", reason=reason,
                  detail=detail[:500])

    def started(self, job_id: str, queued_s: float) -> None:
        log_event(self.log, logging.INFO, "job.running", "job running", job_id=job_id,
                  queued_s=round(queued_s, 3))

    def finished(self, job_id: str, state: str, timings: Mapping[str, float],
                 error: str) -> None:
        if state == "done":
            log_event(self.log, logging.INFO, "job.done", "job done", job_id=job_id,
                      **{k: round(v, 3) for k, v in timings.items()})
        elif state == "cancelled":
            log_event(self.log, logging.WARNING, "job.cancelled",
                      "job cancelled (provider stopping)", job_id=job_id)
        else:
            log_event(self.log, logging.ERROR, "job.failed", "job failed", job_id=job_id,
                      error=error)

    def uploaded(self, root: str, nbytes: int) -> None:
        log_event(self.log, logging.INFO, "state.uploaded", "state uploaded", root=root,
                  bytes=nbytes)
