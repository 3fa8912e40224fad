"""State exchange with a provider: named tensors in, proven tensors out.

Why: some work starts from a state the client holds (fine-tuning from a checkpoint, or one
partition of a coded training step that starts from step t's parameters) and ends with
tensors the client needs back (a partition's gradient). The state a job starts from is named
in the job by its ``proofs.state.StateCommitment`` root (``init``), so uploading it needs no
trust: the provider can only run the job on a state with that root. The tensors a job ends
with are proven, entry by entry, against the final state root the provider signed in its
result (``verde.protocol.peers.result``), so a client checks every fetched tensor without
trusting the transport or the provider (Verde, Arun et al. 2025, state commitments).

``StateEntries`` payload (JSON)::

    {"job_id": str, "step": T, "root": <final state root hex>,
     "entries": [{"name": str, "digest": <tensor digest hex>, "proof": InclusionProof json}]}

with one ``TensorBlob`` per entry, keyed by its name. The payload is not signed: the signed
result commits to ``root``, and the proofs tie every digest to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from proofs import InclusionProof, canonical_json, hex_decode
from proofs.digest import tensor_digest
from proofs.errors import ProofError
from proofs.state import StateCommitment, verify_state_entry
from verde.protocol.peers.errors import InvalidStateEntries, PeerError
from verde.protocol.peers.messages import TensorBlob

_PAYLOAD_FIELDS = {"job_id", "step", "root", "entries"}
_ENTRY_FIELDS = {"name", "digest", "proof"}


@dataclass(frozen=True)
class StateEntries:
    """Named entries of a committed state: JSON payload (see module doc) and tensor blobs."""

    payload: dict[str, Any]
    blobs: dict[str, TensorBlob] = field(default_factory=dict)

    def size(self) -> int:
        """Bytes on the wire: canonical JSON of the payload plus raw tensor bytes."""
        blob_bytes = sum(len(b.data) + 64 for b in self.blobs.values())
        return len(canonical_json(self.payload)) + blob_bytes


def state_to_blobs(state: Mapping[str, torch.Tensor]) -> dict[str, TensorBlob]:
    """A state as raw-byte blobs (what ``StateExchangePeer.put_state`` sends)."""
    if not isinstance(state, Mapping):
        raise ValueError(f"state must be a mapping of name -> tensor, got {type(state).__name__}")
    out = {}
    for name, t in state.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise ValueError(f"state entry {name!r}: expected str -> torch.Tensor, "
                             f"got {type(t).__name__}")
        out[name] = TensorBlob.from_tensor(t)
    return out


def blobs_to_state(blobs: Mapping[str, TensorBlob]) -> dict[str, torch.Tensor]:
    """Tensors back from blobs (raises ``PeerError`` if a blob's bytes do not fit its shape)."""
    return {name: blob.to_tensor() for name, blob in blobs.items()}


def state_root_hex(state: Mapping[str, torch.Tensor]) -> str:
    """The ``StateCommitment`` root of ``state`` as lowercase hex (how uploads are keyed)."""
    return StateCommitment.from_tensors(state).root.hex()


def state_entries(job_id: str, step: int, state: Mapping[str, torch.Tensor],
                  commitment: StateCommitment, names: Sequence[str]) -> StateEntries:
    """The entries ``names`` of ``state`` with their digests and proofs against ``commitment``."""
    entries = [{"name": n, "digest": commitment.digest(n).hex(),
                "proof": commitment.proof(n).to_json()} for n in names]  # fmt: skip
    payload = {"job_id": job_id, "step": step, "root": commitment.root.hex(), "entries": entries}
    return StateEntries(payload, {n: TensorBlob.from_tensor(state[n]) for n in names})


def verify_state_entries(
    entries: StateEntries,
    final_root: bytes,
    names: Sequence[str],
    *,
    job_id: str | None = None,
    structure: Mapping[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
) -> dict[str, torch.Tensor]:
    """Check fetched entries against the signed final state root; return the tensors.

    Raises ``InvalidStateEntries`` naming the entry and the fault when: the payload is
    malformed or for another state (or job, if ``job_id`` is given); an asked name is missing,
    one is extra or repeated; a blob's bytes do not fit its dtype/shape, its digest is not the
    claimed one, or its proof does not lead to ``final_root``; or, with ``structure`` (e.g.
    ``JobContext.state_structure()``), an entry's shape or dtype differs from the expected one.
    """
    asked = list(names)
    if len(set(asked)) != len(asked):
        raise ValueError(f"verify_state_entries: names repeat: {asked}")
    payload = entries.payload
    if not isinstance(payload, dict) or set(payload) != _PAYLOAD_FIELDS:
        got = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise InvalidStateEntries(f"state entries: payload has fields {got}, "
                                  f"expected {sorted(_PAYLOAD_FIELDS)}")
    if job_id is not None and payload["job_id"] != job_id:
        raise InvalidStateEntries(f"state entries are for job {payload['job_id']!r}, "
                                  f"not {job_id}")
    if payload["root"] != final_root.hex():
        raise InvalidStateEntries(f"state entries are for state {str(payload['root'])[:64]}, "
                                  f"the signed result commits to {final_root.hex()}")
    listed = payload["entries"]
    if not isinstance(listed, list) or not all(
        isinstance(e, dict) and set(e) == _ENTRY_FIELDS for e in listed
    ):
        raise InvalidStateEntries(f"state entries: each entry must have fields "
                                  f"{sorted(_ENTRY_FIELDS)}")
    sent = [e["name"] for e in listed]
    if sent != asked or set(entries.blobs) != set(asked):
        missing = sorted(set(asked) - set(sent)) or sorted(set(asked) - set(entries.blobs))
        extra = sorted(set(map(str, sent)) - set(asked)) or sorted(set(entries.blobs) - set(asked))
        raise InvalidStateEntries(f"state entries: asked for {asked}, got entries {sent} and "
                                  f"tensors {sorted(entries.blobs)} (missing {missing}, "
                                  f"extra {extra})")
    out: dict[str, torch.Tensor] = {}
    for entry in listed:
        name = entry["name"]
        try:
            digest = hex_decode(entry["digest"], f"digest of {name!r}", 32)
            proof = InclusionProof.from_json(entry["proof"])
            verify_state_entry(final_root, name, digest, proof)
        except ProofError as exc:
            raise InvalidStateEntries(f"state entry {name!r}: not proven against the final "
                                      f"state root ({exc})") from exc
        try:
            tensor = entries.blobs[name].to_tensor()
        except PeerError as exc:
            raise InvalidStateEntries(f"state entry {name!r}: {exc}") from exc
        if tensor_digest(tensor) != digest:
            raise InvalidStateEntries(f"state entry {name!r}: the tensor sent "
                                      f"({tensor.dtype} {list(tensor.shape)}) does not have "
                                      "the digest its proof commits to")
        if structure is not None:
            if name not in structure:
                raise InvalidStateEntries(f"state entry {name!r} is not part of the job's state")
            shape, dtype = structure[name]
            if tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
                raise InvalidStateEntries(f"state entry {name!r}: {tensor.dtype} "
                                          f"{list(tensor.shape)}, the job's state has {dtype} "
                                          f"{list(shape)}")
        out[name] = tensor
    return out
