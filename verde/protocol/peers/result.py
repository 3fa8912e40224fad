"""The signed result of a job and its checks.

A provider's result is a ``SignedMessage`` of kind ``"result"`` whose payload names the job,
the number of steps, the Merkle root over the state digests of steps 0..T (one leaf per step,
leaf data = the 32-byte state root) and the final state digest with its inclusion proof at
leaf T. The proof makes "wrong final result only" a self-contradiction anyone can check: the
final digest a provider reports must be the last leaf of the tree it is held to (Verde, Arun
et al. 2025, phase 1 commits to checkpoint hashes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proofs import InclusionProof, MessageContext, SignedMessage, hex_decode, verify_message
from proofs.errors import ProofError
from proofs.merkle import verify_inclusion
from verde.errors import VerdeError

RESULT_KIND = "result"


class InvalidResult(VerdeError):
    """A provider's signed result is malformed, signed for another job, or self-contradictory."""


def result_context(job_id: str) -> MessageContext:
    return MessageContext(job_id, None, None, RESULT_KIND)


@dataclass(frozen=True)
class ResultClaim:
    """A checked result: who claims what (and the signed message it was read from)."""

    signer_hex: str
    n_steps: int
    step_root: bytes
    final_state: bytes
    signed: SignedMessage | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        """What providers are grouped by: (step root, final state)."""
        return (self.step_root.hex(), self.final_state.hex())


def result_payload(job_id: str, n_steps: int, step_root: bytes, final_state: bytes,
                   final_proof: InclusionProof) -> dict[str, Any]:  # fmt: skip
    return {
        "job_id": job_id,
        "n_steps": n_steps,
        "step_root": step_root.hex(),
        "final_state": final_state.hex(),
        "final_proof": final_proof.to_json(),
    }


def check_result(signed: SignedMessage, job_id: str, n_steps: int) -> ResultClaim:
    """Verify a signed result for ``job_id``; raise ``InvalidResult`` saying what is wrong."""
    try:
        verify_message(signed, result_context(job_id))
        payload = signed.payload
        if set(payload) != {"job_id", "n_steps", "step_root", "final_state", "final_proof"}:
            raise InvalidResult(f"result payload has fields {sorted(payload)}")
        if payload["job_id"] != job_id:
            raise InvalidResult("result names another job")
        if payload["n_steps"] != n_steps:
            raise InvalidResult(f"result claims {payload['n_steps']} steps, the job has {n_steps}")
        root = hex_decode(payload["step_root"], "step_root", 32)
        final = hex_decode(payload["final_state"], "final_state", 32)
        proof = InclusionProof.from_json(payload["final_proof"])
        if proof.index != n_steps or proof.n_leaves != n_steps + 1:
            raise InvalidResult("final_proof is not for the last leaf of a tree of steps 0..T")
        verify_inclusion(root, final, n_steps, n_steps + 1, proof)
    except ProofError as exc:
        raise InvalidResult(f"invalid result: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidResult(f"malformed result: {exc}") from exc
    return ResultClaim(signed.signer.hex(), n_steps, root, final, signed)
