"""Fetching a job's verified final state from a provider (the client side of the exchange).

The signed result names the final state root; every fetched tensor is checked against it with
:func:`verde.protocol.peers.state.verify_state_entries` (Verde, Arun et al. 2025: state
commitments), so neither the transport nor the provider needs to be trusted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

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
