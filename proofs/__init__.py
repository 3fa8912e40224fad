"""proofs: canonical tensor digests, Merkle trees, signatures and certificates."""

from proofs.errors import ProofError

__all__ = ["ProofError"]
