"""Coded computation over gRPC providers (``verde coded-matmul``, ``verde coded-infer``).

The codes, the share jobs and the disputes over located shares are verde's own
(``verde.integration.coded_compute``); this module dials the providers, names each by its
address, and — when an arbiter is given — lets the arbiter service referee the disputes
instead of this process (:func:`arbiter.coded.arbiter_runner`, as ``verde train-coded``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from arbiter.arbiter_client import ArbiterClient
from arbiter.coded import arbiter_runner
from arbiter.delegate import Report, Rounds, Verdicts
from arbiter.errors import ArbiterInputError
from arbiter.provider_client import GrpcProviderPeer
from verde.coding.bacc import BACC
from verde.coding.sbacc import SBACC
from verde.coding.strassen_ft import FaultTolerantStrassen, ReplicatedStrassen
from verde.integration.coded_compute import (
    ProviderCodedRun,
    ProviderShareWorker,
    inference_on_providers,
    inference_workers,
    matmul_on_providers,
    matmul_workers,
)
from verde.integration.refereed_inference import ServiceModel

SCHEMES = ("ft-strassen", "replicated")
CODES = ("bacc", "sbacc")


def build_scheme(name: str) -> FaultTolerantStrassen | ReplicatedStrassen:
    """The matmul scheme named on the command line: the fault-tolerant Strassen-like scheme
    (two algorithms and two parity products, 16 nodes) or three Strassen copies (21)."""
    if name == "ft-strassen":
        return FaultTolerantStrassen()
    if name == "replicated":
        return ReplicatedStrassen(3)
    raise ArbiterInputError(f"scheme must be one of {SCHEMES}, got {name!r}")


def build_code(name: str, n_workers: int, n_inputs: int, *, redundancy: int = 0,
               tolerance: float | None = None) -> BACC | SBACC:
    """The code named on the command line (its own message names what does not fit)."""
    try:
        if name == "bacc":
            return BACC(n_workers, n_inputs)
        if name == "sbacc":
            if tolerance is None:
                raise ArbiterInputError("sbacc needs a tolerance (the largest misfit an honest "
                                        "answer set has; calibrate it on a trusted run)")
            return SBACC(n_workers, n_inputs, redundancy, tolerance)
    except ArbiterInputError:
        raise
    except ValueError as exc:
        raise ArbiterInputError(f"{name} code over {n_workers} workers and {n_inputs} "
                                f"groups: {exc}") from exc
    raise ArbiterInputError(f"code must be one of {CODES}, got {name!r}")


def coded_matmul(a: Any, b: Any, scheme: FaultTolerantStrassen | ReplicatedStrassen,
                 providers: Sequence[str], arbiter: ArbiterClient | None, *,
                 peer_factory: Callable[[str], GrpcProviderPeer] = GrpcProviderPeer,
                 dispute: bool = True, timeout_s: float | None = None,
                 job_timeout_s: float = 600.0, dispute_timeout_s: float = 1800.0,
                 report: Report | None = None, rounds: Rounds | None = None,
                 verdicts: Verdicts | None = None) -> ProviderCodedRun:
    """``a @ b`` by ``scheme`` over the providers at ``providers`` (node ``i`` on provider
    ``i mod P``); located nodes settled by disputes (at the arbiter, when given)."""
    def run(peers: dict[str, GrpcProviderPeer], runner: Any) -> ProviderCodedRun:
        workers = matmul_workers(peers, scheme, job_timeout_s=job_timeout_s)
        return matmul_on_providers(a, b, workers, scheme=scheme, runner=runner,
                                   dispute=dispute, timeout_s=timeout_s)

    return _on_providers(run, providers, arbiter, peer_factory=peer_factory, report=report,
                         rounds=rounds, verdicts=verdicts, dispute_timeout_s=dispute_timeout_s)


def coded_inference(model: ServiceModel, batch: Any, code: BACC | SBACC,
                    providers: Sequence[str], arbiter: ArbiterClient | None, *,
                    peer_factory: Callable[[str], GrpcProviderPeer] = GrpcProviderPeer,
                    dispute: bool = True, timeout_s: float | None = None,
                    wait_for: int | None = None, job_timeout_s: float = 600.0,
                    dispute_timeout_s: float = 1800.0, report: Report | None = None,
                    rounds: Rounds | None = None, verdicts: Verdicts | None = None,
                    ) -> ProviderCodedRun:
    """``model`` on ``batch`` by ``code`` over the providers at ``providers`` (share ``j`` on
    provider ``j mod P``); workers SBACC locates are settled by disputes."""
    def run(peers: dict[str, GrpcProviderPeer], runner: Any) -> ProviderCodedRun:
        workers: list[ProviderShareWorker] = inference_workers(model, peers, code,
                                                               job_timeout_s=job_timeout_s)
        return inference_on_providers(model, batch, code, workers, runner=runner,
                                      dispute=dispute, wait_for=wait_for, timeout_s=timeout_s)

    return _on_providers(run, providers, arbiter, peer_factory=peer_factory, report=report,
                         rounds=rounds, verdicts=verdicts, dispute_timeout_s=dispute_timeout_s)


def _on_providers(run: Callable[[dict[str, GrpcProviderPeer], Any], ProviderCodedRun],
                  providers: Sequence[str], arbiter: ArbiterClient | None, *,
                  peer_factory: Callable[[str], GrpcProviderPeer], report: Report | None,
                  rounds: Rounds | None, verdicts: Verdicts | None,
                  dispute_timeout_s: float) -> ProviderCodedRun:
    if not providers or len(set(providers)) != len(providers):
        raise ArbiterInputError("give one or more distinct provider addresses")
    runner = (None if arbiter is None else
              arbiter_runner(arbiter, report=report, rounds=rounds, verdicts=verdicts,
                             timeout_s=dispute_timeout_s))
    peers = {addr: peer_factory(addr) for addr in providers}
    try:
        return run(peers, runner)
    finally:
        for peer in peers.values():
            peer.close()
