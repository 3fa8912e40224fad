"""Coded training over gRPC providers (``verde train-coded``): verde.coding on the network.

The coding, the coordinator and the disputes are verde's own
(``verde.integration.coded_training.providers``); this module only dials the providers, and — when
an arbiter is given — lets the arbiter service referee each split replica group instead of this
process (the same ``arbiter_dispute_runner`` that ``verde delegate`` uses).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from arbiter.arbiter_client import ArbiterClient
from arbiter.delegate import Report, Rounds, Verdicts, arbiter_dispute_runner
from arbiter.errors import ArbiterInputError
from arbiter.provider_client import GrpcProviderPeer
from proofs import SignedMessage
from verde.coding import (
    Coordinator,
    FractionalRepetitionCode,
    GradientCode,
    ReplicatedGroups,
    StepOutcome,
)
from verde.integration.coded_training import (
    CodedJob,
    ProviderTraining,
    provider_workers,
    train_on_providers,
)
from verde.protocol.dispute.multi import DisputeRunner
from verde.protocol.jobs.spec import JobSpec

CODES = ("fractional", "replicated")
#: (what, bytes so far, bytes in all or None) of a transfer.
Transfer = Callable[[str, int, int | None], None]


def build_code(name: str, n_workers: int, *, stragglers: int = 0, replication: int = 0,
               byzantine: int = 0, detect_only: bool = False) -> GradientCode:
    """The code named on the command line, for ``n_workers`` providers (parameters that do
    not make a code are the caller's input error, named by the code's own message)."""
    try:
        if name == "fractional":
            return FractionalRepetitionCode(n_workers, stragglers)
        if name == "replicated":
            return ReplicatedGroups(n_workers, replication, byzantine, stragglers,
                                    "detect" if detect_only else "correct")  # fmt: skip
    except ValueError as exc:
        raise ArbiterInputError(f"{name} code for {n_workers} providers: {exc}") from exc
    raise ArbiterInputError(f"code must be one of {CODES}, got {name!r}")


def train_coded(spec: JobSpec, code: GradientCode, providers: Sequence[str],
                arbiter: ArbiterClient | None, steps: int, *,
                peer_factory: Callable[[str], GrpcProviderPeer] = GrpcProviderPeer,
                report: Report | None = None, step_timeout_s: float | None = None,
                dispute_timeout_s: float = 1800.0,
                progress: Callable[[int, int], None] | None = None,
                transfer: Transfer | None = None, rounds: Rounds | None = None,
                verdicts: Verdicts | None = None) -> tuple[CodedJob, ProviderTraining]:
    """Train ``steps`` steps of ``spec`` coded over the providers at ``providers``.

    ``report`` gets a line per step, ``progress`` (steps done, steps) and ``transfer``
    (label, bytes so far) the training's progress after each step, ``rounds`` and
    ``verdicts`` the disputes' (see :func:`arbiter.delegate.delegate`).
    """
    if len(set(providers)) != len(providers) or not providers:
        raise ArbiterInputError("give one or more distinct provider addresses")
    if len(providers) != code.n_workers:
        raise ArbiterInputError(f"the code needs {code.n_workers} providers, got {len(providers)}")
    job = CodedJob(spec, code.n_partitions)
    say = report or (lambda _msg: None)

    runner = (None if arbiter is None else
              arbiter_runner(arbiter, report=say, rounds=rounds, verdicts=verdicts,
                             timeout_s=dispute_timeout_s))
    peers = {addr: peer_factory(addr) for addr in providers}

    def on_step(outcome: StepOutcome) -> None:
        say(_step_line(outcome, providers))
        if progress is not None:
            progress(outcome.step, steps)
        if transfer is not None:
            transfer("sent to providers", sum(p.bytes_sent for p in peers.values()), None)
            transfer("received from providers",
                     sum(p.bytes_received for p in peers.values()), None)

    try:
        workers = provider_workers(job, peers)
        with Coordinator(code, workers, timeout_s=step_timeout_s) as coordinator:
            run = train_on_providers(job, coordinator, steps, runner=runner, on_step=on_step)
    finally:
        for peer in peers.values():
            peer.close()
    return job, run


def arbiter_runner(arbiter: ArbiterClient, *, report: Report | None = None,
                   rounds: Rounds | None = None, verdicts: Verdicts | None = None,
                   timeout_s: float = 1800.0,
                   ) -> Callable[[JobSpec, Mapping[str, SignedMessage], Mapping[str, Any]],
                                 DisputeRunner]:
    """A runner factory (coded training's and coded computation's) whose disputes the arbiter
    service referees; the parties are named by their provider addresses."""
    def runner(spec: JobSpec, results: Mapping[str, SignedMessage],
               _peers: Mapping[str, Any]) -> DisputeRunner:
        return arbiter_dispute_runner(spec, results, arbiter, report=report, rounds=rounds,
                                      verdicts=verdicts, timeout_s=timeout_s)

    return runner


def _step_line(outcome: StepOutcome, names: Sequence[str]) -> str:
    parts = [f"step {outcome.step}: {len(outcome.answered)} answered"]
    if outcome.stragglers:
        parts.append("stragglers " + ", ".join(names[w] for w in outcome.stragglers))
    if outcome.failed:
        parts.append("failed " + ", ".join(names[w] for w in outcome.failed))
    if outcome.faulty:
        parts.append("FAULTY " + ", ".join(names[w] for w in outcome.faulty))
    return "; ".join(parts) + f" ({outcome.elapsed_s:.2f}s)"


def training_json(job: CodedJob, run: ProviderTraining, names: Sequence[str]) -> dict[str, Any]:
    """What ``verde train-coded --json`` prints."""
    return {
        "job_id": job.base.job_id,
        "partitions": job.n_partitions,
        "final_state": run.digest,
        "steps": [{"step": o.step, "answered": [names[w] for w in o.answered],
                   "stragglers": [names[w] for w in o.stragglers],
                   "failed": [names[w] for w in o.failed],
                   "faulty": [names[w] for w in o.faulty],
                   "elapsed_s": round(o.elapsed_s, 4)} for o in run.outcomes],
        "disputes": [{"step": d.step, "partition": d.partition, "job_id": d.spec.job_id,
                      "honest": d.resolution.honest, "dishonest": d.resolution.cheaters,
                      "dispute_ids": [r.dispute_id for r in d.resolution.disputes],
                      "reasons": [r.verdict.reason for r in d.resolution.disputes]}
                     for d in run.disputes],
    }  # fmt: skip
