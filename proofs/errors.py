"""Errors raised by proofs. ``ProofError`` is the root; verification failures subclass it."""

from __future__ import annotations


class ProofError(Exception):
    """Root of every error proofs raises on purpose."""
