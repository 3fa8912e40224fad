"""What the services report at their state changes, for logs and metrics to listen to.

The arbiter's engine and the provider's job host call these hooks at the few points where a
dispute or a job changes state; :mod:`arbiter.state_log` turns them into log lines and
:mod:`arbiter.metrics` into Prometheus series. The base classes do nothing, so an observer
overrides only what it needs, and an observer that raises never stops a dispute or a job
(:func:`notify` logs the error and goes on).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("verde.observers")


class DisputeObserver:
    """Hooks of :class:`arbiter.engine.ArbiterEngine` (one call per state change)."""

    def opened(self, dispute_id: str, job_id: str) -> None:
        """A client opened a dispute (or reopened one the store already had)."""

    def claimed(self, dispute_id: str, job_id: str, phase: str, rounds: int) -> None:
        """This process took the dispute's lease; ``rounds > 0`` means it resumes one."""

    def advanced(self, dispute_id: str, event: Mapping[str, Any], phase_before: str,
                 phase: str, rounds: int) -> None:
        """An answer or timeout (``event``) was committed; the dispute is now in ``phase``."""

    def round_done(self, dispute_id: str, phase: str, round_: int, seconds: float) -> None:
        """Every query of round ``round_`` (in ``phase``) was answered or timed out."""

    def finished(self, dispute_id: str, status: str, verdict: Mapping[str, Any] | None,
                 error: str | None) -> None:
        """The dispute ended: ``decided`` with a verdict, or ``failed`` with an error."""

    def released(self, dispute_id: str, phase: str, rounds: int) -> None:
        """This process handed the dispute back (draining): another arbiter may take it."""

    def lease_lost(self, dispute_id: str) -> None:
        """Another arbiter took the dispute over (this process's lease had expired)."""


class JobObserver:
    """Hooks of :class:`arbiter.provider_host.ProviderHost`."""

    def accepted(self, job_id: str, program: str, steps: int) -> None:
        """A job passed admission and was queued."""

    def refused(self, reason: str, detail: str) -> None:
        """A job was refused before anything was allocated (``reason``: the error's kind)."""

    def started(self, job_id: str, queued_s: float) -> None:
        """A queued job started running after ``queued_s`` seconds in the queue."""

    def stepped(self, job_id: str, step: int, total: int) -> None:
        """Step ``step`` of ``total`` was computed and committed."""

    def finished(self, job_id: str, state: str, timings: Mapping[str, float],
                 error: str) -> None:
        """A job ended ``done`` (``timings``: seconds training and committing), ``failed``
        or ``cancelled`` (queued when the provider stopped)."""

    def uploaded(self, root: str, nbytes: int) -> None:
        """A client uploaded a state (``nbytes`` of tensor data) for jobs to start from."""


def notify(observers: Sequence[object], hook: str, *args: Any, **kwargs: Any) -> None:
    """Call ``hook`` on every observer; an observer's exception is logged, never raised."""
    for observer in observers:
        try:
            getattr(observer, hook)(*args, **kwargs)
        except Exception:
            log.exception("observer %s failed in %s", type(observer).__name__, hook)
