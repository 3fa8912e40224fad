"""Commitment to a named collection of tensors (a state dict) with single-entry proofs.

Why: Verde's arbiter needs a single operator's inputs, some of which are tensors of the
training state at step ``s - 1``. The provider commits to the whole state with one root and
later proves one named tensor against it, without sending the rest (Verde, Arun et al. 2025).

Construction: the names are sorted by their UTF-8 bytes; leaf ``i`` is

    ``b"verde/state-entry/v1\\x00" || uint32_le(len(name_utf8)) || name_utf8 || tensor_digest``

and the root is the RFC 6962 Merkle root over those leaves (see ``proofs.merkle``). The
length-prefixed name prevents one (name, digest) pair from being read as another; the domain
tag keeps state leaves apart from every other kind of leaf. An empty state has the empty-tree
root ``SHA-256(b"")``.

Limits: a proof shows that ``(name, digest)`` is *a* leaf of the committed tree. That the tree
was built by this rule (sorted, one leaf per name) is not proven by a single-entry proof: a
committer who builds a malformed tree can only hurt itself, since its signed root is what it is
held to, and a verifier who needs uniqueness checks the full sorted name list.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from proofs.canonical import require_bytes
from proofs.digest import tensor_digest
from proofs.errors import InvalidProof, MalformedInput
from proofs.merkle import HASH_SIZE, InclusionProof, MerkleTree, verify_inclusion

STATE_ENTRY_DOMAIN = b"verde/state-entry/v1\x00"


def state_leaf(name: str, digest: bytes) -> bytes:
    """The leaf data committing ``name`` to the tensor digest ``digest``."""
    encoded = _encode_name(name)
    digest = require_bytes(digest, f"tensor digest of {name!r}", HASH_SIZE)
    return _leaf(encoded, digest)


def _leaf(encoded_name: bytes, digest: bytes) -> bytes:
    return STATE_ENTRY_DOMAIN + struct.pack("<I", len(encoded_name)) + encoded_name + digest


def _encode_name(name: Any) -> bytes:
    if not isinstance(name, str):
        raise MalformedInput(f"state entry names must be str, got {type(name).__name__}")
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedInput(f"state entry name {name!r} is not valid Unicode") from exc


class StateCommitment:
    """Merkle commitment to ``{name: tensor digest}``; ``root`` is the state digest."""

    def __init__(self, digests: Mapping[str, bytes]) -> None:
        """Commit to precomputed digests (32 bytes each); see ``from_tensors``."""
        entries = sorted((_encode_name(name), name) for name in digests)
        self._names: tuple[str, ...] = tuple(name for _, name in entries)
        self._digests: dict[str, bytes] = {
            name: require_bytes(digests[name], f"digest of {name!r}", HASH_SIZE)
            for name in self._names
        }
        self._index = {name: i for i, name in enumerate(self._names)}
        self._tree = MerkleTree([_leaf(encoded, self._digests[name]) for encoded, name in entries])

    @classmethod
    def from_tensors(cls, mapping: Mapping[str, Any]) -> StateCommitment:
        """Digest every tensor (``tensor_digest``) and commit to the result."""
        if not isinstance(mapping, Mapping):
            raise MalformedInput(f"expected a mapping of name -> tensor, got {type(mapping)}")
        return cls({name: tensor_digest(value) for name, value in mapping.items()})

    @property
    def root(self) -> bytes:
        return self._tree.root

    @property
    def names(self) -> tuple[str, ...]:
        """Entry names in commitment order (sorted by UTF-8 bytes)."""
        return self._names

    def digest(self, name: str) -> bytes:
        """The committed tensor digest of ``name``."""
        self._require(name)
        return self._digests[name]

    def proof(self, name: str) -> InclusionProof:
        """The inclusion proof of entry ``name`` (for ``verify_state_entry``)."""
        self._require(name)
        return self._tree.proof(self._index[name])

    def _require(self, name: str) -> None:
        if name not in self._index:
            raise KeyError(f"no state entry named {name!r}")

    def __len__(self) -> int:
        return len(self._names)


def state_digest(mapping: Mapping[str, Any]) -> bytes:
    """The root of ``StateCommitment.from_tensors(mapping)``."""
    return StateCommitment.from_tensors(mapping).root


def verify_state_entry(root: bytes, name: str, tensor_digest: bytes, proof: InclusionProof) -> None:
    """Check that the state with ``root`` maps ``name`` to ``tensor_digest``; raise if not."""
    if not isinstance(proof, InclusionProof):
        raise MalformedInput(f"proof must be an InclusionProof, got {type(proof).__name__}")
    leaf = state_leaf(name, tensor_digest)
    try:
        verify_inclusion(root, leaf, proof.index, proof.n_leaves, proof)
    except InvalidProof as exc:
        raise InvalidProof(f"state entry {name!r}: {exc}") from exc
