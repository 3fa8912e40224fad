"""Coded inference (BACC/SBACC) and the coded matmul (fault-tolerant Strassen-like) over
verde providers: the user-facing entry points, and the report they print.

Both run ``verde.coding.coded_compute`` with :class:`ProviderShareWorker` workers and, unless
turned off, a :class:`DisputingShareReferee` for the shares the code locates. The matmul's node
products are exact under repops, so a located node is settled by a dispute that names the
faulty provider and its product replaced by the verified one: the decoded product then rests on
verified answers only. BACC's result is an approximation by construction (Berrut
interpolation); its shares are still exact jobs, so a worker SBACC locates outside its
tolerance is refereed the same way and reported with the dispute's verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from verde.coding.bacc import BACC
from verde.coding.coded_compute import CodedRun, coded_inference, coded_matmul
from verde.coding.sbacc import SBACC
from verde.coding.strassen_ft import FaultTolerantStrassen, ReplicatedStrassen
from verde.integration.coded_compute.errors import CodedInputError
from verde.integration.coded_compute.providers import (
    DisputingShareReferee,
    ProviderShareWorker,
    ShareDispute,
    ShareRunnerFactory,
)
from verde.integration.coded_compute.share_jobs import (
    InferenceShares,
    MatmulShares,
    ShareJobs,
    share_tensor,
)
from verde.integration.refereed_inference import ServiceModel
from verde.protocol.peers.protocol import StateExchangePeer


@dataclass(frozen=True)
class ProviderCodedRun:
    """A coded run over providers: the decoded result, who computed which share, and the
    disputes over located shares (``named``: the providers that lost one)."""

    run: CodedRun
    workers: tuple[str, ...]
    disputes: list[ShareDispute] = field(default_factory=list)

    @property
    def result(self) -> Any:
        return self.run.result

    @property
    def named(self) -> tuple[str, ...]:
        out: list[str] = []
        for d in self.disputes:
            for name in d.resolution.cheaters if d.resolution is not None else ():
                if name not in out:
                    out.append(name)
        return tuple(out)

    def report(self) -> dict[str, Any]:
        """A JSON-ready account: each share's provider and fate, the disputes' verdicts.

        A share's ``flagged`` says the code located it (or named it a candidate when it could
        not decide); only ``named_faulty`` — providers that lost a dispute — says who cheated.
        ``verdict`` is ``upheld`` (a dispute or a second provider confirmed the answer),
        ``replaced`` (the other side's verified answer was used) or ``dropped`` (nothing could
        be verified; an erasure)."""
        r = self.run
        shares = []
        for i, name in enumerate(self.workers):
            entry: dict[str, Any] = {"share": i, "provider": name, "state": (
                "answered" if i in r.answered else "failed" if i in r.failed else "straggler")}
            if i in r.failed:
                entry["error"] = r.failed[i]
            if i in r.faulty:
                entry["flagged"] = True
            if i in r.refereed:
                entry["verdict"] = ("dropped" if not r.refereed[i] else "upheld" if any(
                    d.index == i and d.resolution is not None and d.suspect in d.resolution.honest
                    for d in self.disputes) else "replaced")
            shares.append(entry)
        return {"shares": shares, "named_faulty": list(self.named),
                "disputes": [_dispute_json(d) for d in self.disputes],
                "elapsed_s": round(r.elapsed_s, 4)}


def share_workers(jobs: ShareJobs, peers: Mapping[str, StateExchangePeer], n_shares: int, *,
                  job_timeout_s: float = 600.0) -> list[ProviderShareWorker]:
    """One worker per share, the providers taken in turn (share ``i`` on provider
    ``i mod P``): with fewer providers than shares a cheating provider holds several shares,
    which the code must then locate together."""
    if not peers:
        raise CodedInputError("give at least one provider")
    if not isinstance(n_shares, int) or n_shares < 1:
        raise ValueError(f"n_shares must be a positive int, got {n_shares!r}")
    names = list(peers)
    return [ProviderShareWorker(peers[names[i % len(names)]], jobs, names[i % len(names)],
                                job_timeout_s=job_timeout_s) for i in range(n_shares)]


def matmul_on_providers(a: Any, b: Any, workers: Sequence[ProviderShareWorker], *,
                        scheme: FaultTolerantStrassen | ReplicatedStrassen | None = None,
                        referees: Sequence[ProviderShareWorker] = (),
                        runner: ShareRunnerFactory | None = None, dispute: bool = True,
                        wait_for: int | None = None, timeout_s: float | None = None,
                        ) -> ProviderCodedRun:
    """``a @ b`` (float32) by the fault-tolerant Strassen-like scheme (default: with both
    parity products, 16 nodes) over provider workers, one per node (:func:`share_workers`
    with :class:`MatmulShares`). Located nodes are disputed unless ``dispute`` is False."""
    scheme = scheme if scheme is not None else FaultTolerantStrassen()
    a, b = share_tensor(a, "a"), share_tensor(b, "b")
    referee = _referee(workers, referees, runner, dispute)
    run = coded_matmul(a, b, scheme, workers, wait_for=wait_for, timeout_s=timeout_s,
                       referee=referee)
    return ProviderCodedRun(run, tuple(w.name for w in workers),
                            list(referee.disputes) if referee else [])


def inference_on_providers(model: ServiceModel, batch: Any, code: BACC | SBACC,
                           workers: Sequence[ProviderShareWorker], *,
                           referees: Sequence[ProviderShareWorker] = (),
                           runner: ShareRunnerFactory | None = None, dispute: bool = True,
                           wait_for: int | None = None, timeout_s: float | None = None,
                           ) -> ProviderCodedRun:
    """``model`` on ``batch`` by BACC or SBACC over provider workers, one per share
    (:class:`InferenceShares` of this model): the batch is cut into ``code.n_inputs`` groups,
    each share is the model's ``infer`` job on one encoded group, and the decoded outputs
    are stacked back (an approximation: see ``verde.coding.bacc``). With SBACC, located
    workers are disputed unless ``dispute`` is False."""
    for w in workers:
        if not isinstance(w.jobs, InferenceShares) or w.jobs.model != model:
            raise ValueError(f"worker {w.name} runs other jobs than this model's shares")
    rows = share_tensor(batch, "batch")
    if rows.ndim < 1 or rows.shape[0] < code.n_inputs:
        raise CodedInputError(f"batch of shape {tuple(rows.shape)}: needs at least one row per "
                              f"group ({code.n_inputs})")
    # A program or parameters that do not fit are the caller's one error, before any upload
    # (every share's job would fail the same way on every provider).
    model.infer_job(rows[: rows.shape[0] // code.n_inputs])
    referee = _referee(workers, referees, runner, dispute)
    run = coded_inference(None, rows, code, workers, wait_for=wait_for, timeout_s=timeout_s,
                          referee=referee)
    return ProviderCodedRun(run, tuple(w.name for w in workers),
                            list(referee.disputes) if referee else [])


def matmul_workers(peers: Mapping[str, StateExchangePeer],
                   scheme: FaultTolerantStrassen | ReplicatedStrassen, *,
                   backend: str = "repops", job_timeout_s: float = 600.0,
                   ) -> list[ProviderShareWorker]:
    """The scheme's node workers over ``peers`` (:func:`share_workers`). Refused where one
    provider would hold two nodes computing the same sub-product (replicated copies with a
    provider count that divides 7): identical wrong copies would outvote the honest one."""
    workers = share_workers(MatmulShares(backend), peers, scheme.n_nodes,
                            job_timeout_s=job_timeout_s)
    held: dict[tuple[str, object], int] = {}
    for node, w in zip(scheme.nodes, workers, strict=True):
        other = held.setdefault((w.name, node.product), node.index)
        if other != node.index:
            raise CodedInputError(
                f"provider {w.name} would compute nodes {other} and {node.index}, the same "
                f"sub-product: with {len(peers)} providers a cheater there is never outvoted; "
                "give another number of providers")
    return workers


def inference_workers(model: ServiceModel, peers: Mapping[str, StateExchangePeer],
                      code: BACC | SBACC, *, job_timeout_s: float = 600.0,
                      ) -> list[ProviderShareWorker]:
    """The code's share workers over ``peers`` (:func:`share_workers`)."""
    return share_workers(InferenceShares(model), peers, code.n_workers,
                         job_timeout_s=job_timeout_s)


def _referee(workers: Sequence[ProviderShareWorker], referees: Sequence[ProviderShareWorker],
             runner: ShareRunnerFactory | None, dispute: bool) -> DisputingShareReferee | None:
    if not all(isinstance(w, ProviderShareWorker) for w in (*workers, *referees)):
        raise ValueError("workers and referees must be ProviderShareWorkers")
    return DisputingShareReferee(workers, referees, runner) if dispute else None


def _dispute_json(d: ShareDispute) -> dict[str, Any]:
    doc: dict[str, Any] = {"share": d.index, "job_id": d.spec.job_id, "suspect": d.suspect,
                           "second": d.referee}
    if d.resolution is None:
        doc["error"] = d.error
        return doc
    res = d.resolution
    doc.update({"honest": res.honest, "dishonest": res.cheaters,
                "dispute_ids": [r.dispute_id for r in res.disputes],
                "reasons": [r.verdict.reason for r in res.disputes]})
    return doc


