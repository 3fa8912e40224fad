"""Fetching a job's verified final state from a provider (the client side of the exchange):
named entries (trained weights) or an inference job's outputs, every sample's (one state
entry per step's batch, ``out/<step>``).

The signed result names the final state root; every fetched tensor is checked against it with
:func:`verde.protocol.peers.state.verify_state_entries` (Verde, Arun et al. 2025: state
commitments), so neither the transport nor the provider needs to be trusted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.protocol import StateExchangePeer
from verde.protocol.peers.result import InvalidResult, ResultClaim, check_result
from verde.protocol.peers.state import verify_state_entries


def fetch_final_state(
    peer: StateExchangePeer,
    job_id: str,
    n_steps: int,
    names: Sequence[str],
    *,
    structure: Mapping[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
) -> tuple[ResultClaim, dict[str, torch.Tensor]]:
    """The peer's checked signed result and the verified entries ``names`` of its final state.

    Raises ``InvalidResult`` if the result is not a valid one signed by this peer for
    ``job_id`` with ``n_steps`` steps, ``InvalidStateEntries`` if an entry does not verify.
    """
    claim = check_result(peer.result(job_id), job_id, n_steps)
    if claim.signer_hex != peer.identity.hex():
        raise InvalidResult(f"result for job {job_id} is signed by {claim.signer_hex[:16]}, "
                            f"not by the provider asked ({peer.identity.hex()[:16]})")
    entries = peer.fetch_state(job_id, names)
    tensors = verify_state_entries(entries, claim.final_state, names, job_id=job_id,
                                   structure=structure)
    return claim, tensors


def fetch_outputs(
    peer: StateExchangePeer,
    spec: JobSpec,
    *,
    per_request: int = 64,
) -> tuple[ResultClaim, torch.Tensor, list[int]]:
    """Every sample's outputs of an inference job, each batch verified against the signed
    final state root: (the checked result, outputs stacked over all steps' samples in order,
    the dataset index of each row). Fetches ``per_request`` batches per request."""
    from verde.protocol.jobs.context import JobContext, output_entry

    if spec.kind != "infer":
        raise ValueError(f"job {spec.job_id[:16]} is a {spec.kind} job, not an inference job")
    if not isinstance(per_request, int) or per_request < 1:
        raise ValueError(f"per_request must be a positive int, got {per_request!r}")
    ctx = JobContext.from_spec(spec)
    structure = ctx.state_structure()
    names = [output_entry(s) for s in range(1, spec.steps + 1)]
    claim: ResultClaim | None = None
    batches: dict[str, torch.Tensor] = {}
    for start in range(0, len(names), per_request):
        chunk = names[start:start + per_request]
        claim, got = fetch_final_state(peer, spec.job_id, spec.steps, chunk,
                                       structure={n: structure[n] for n in chunk})
        batches.update(got)
    assert claim is not None  # an inference job has at least one step
    indices = [i for s in range(1, spec.steps + 1) for i in ctx.batch_indices(s)]
    return claim, torch.cat([batches[n] for n in names]), indices
