"""Merkle trees over any number of leaves, with inclusion proofs (RFC 6962 / RFC 9162 shape).

Why: a provider commits to a long sequence (one digest per training step, one leaf per graph
node, one per data sample) with a single 32-byte root, and can later prove any one element, or
be walked down to the first element where it disagrees with another provider (Verde, Arun et
al. 2025; Canetti, Riva, Rothblum 2011).

Hashes (RFC 6962 section 2.1, SHA-256):

* ``leaf_hash(d) = SHA-256(0x00 || d)`` and ``node_hash(l, r) = SHA-256(0x01 || l || r)``.
  The distinct one-byte prefixes are the second-preimage defence: an inner node's 64-byte
  input can never be presented as a leaf (or the other way round) to forge a proof for data
  that was never committed.
* Shape for ``n`` leaves: a single leaf is its own leaf hash; for ``n > 1`` the left subtree
  holds the first ``k`` leaves, ``k`` the largest power of two strictly less than ``n``, and
  the right subtree the remaining ``n - k``. This is RFC 6962's MTH, so roots agree with
  Certificate Transparency tooling. The empty tree's root is ``SHA-256(b"")`` (RFC 6962), and
  it has no proofs.

An inner node is named by ``NodePosition(lo, hi)``, the half-open range of leaves it covers.
Bottom-up, level ``l`` pairs the nodes of level ``l - 1`` and promotes a lone last node
unchanged; that gives exactly RFC 6962's shape, and node ``(lo, hi)`` sits at level
``ceil(log2(hi - lo))``, index ``lo >> level``. Levels are kept as packed ``bytes`` (32 bytes
per node), so a million-leaf tree costs about 64 MiB and no per-node Python objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proofs.canonical import as_json_object, hex_decode, require_bytes, require_field, require_keys
from proofs.errors import InvalidProof, MalformedInput

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of a leaf holding ``data``."""
    return hashlib.sha256(LEAF_PREFIX + require_bytes(data, "leaf data")).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an inner node."""
    left = require_bytes(left, "left child hash", HASH_SIZE)
    right = require_bytes(right, "right child hash", HASH_SIZE)
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(size: int) -> int:
    """Leaves in the left subtree of a node covering ``size >= 2`` leaves (RFC 6962)."""
    if size < 2:
        raise ValueError(f"a node covering {size} leaves has no children")
    return 1 << ((size - 1).bit_length() - 1)


@dataclass(frozen=True, order=True)
class NodePosition:
    """A node of a tree of ``n`` leaves, named by the leaf range ``[lo, hi)`` it covers."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        for name in ("lo", "hi"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise MalformedInput(f"NodePosition.{name} must be an int, got {value!r}")
        if not 0 <= self.lo < self.hi:
            raise MalformedInput(f"NodePosition needs 0 <= lo < hi, got [{self.lo}, {self.hi})")

    @property
    def size(self) -> int:
        return self.hi - self.lo

    @property
    def is_leaf(self) -> bool:
        return self.size == 1

    def children(self) -> tuple[NodePosition, NodePosition]:
        """The left and right child positions (the split rule of the module docstring)."""
        k = split_point(self.size)
        return NodePosition(self.lo, self.lo + k), NodePosition(self.lo + k, self.hi)

    def check_in_tree(self, n_leaves: int) -> None:
        """Raise ``MalformedInput`` unless this is a node of a tree with ``n_leaves`` leaves."""
        level = (self.size - 1).bit_length()
        if (
            self.hi > n_leaves
            or self.lo % (1 << level)
            or self.hi != min(self.lo + (1 << level), n_leaves)
        ):
            raise MalformedInput(f"{self} is not a node of a tree of {n_leaves} leaves")

    def to_json(self) -> list[int]:
        return [self.lo, self.hi]

    @classmethod
    def from_json(cls, data: Any) -> NodePosition:
        if not isinstance(data, list | tuple) or len(data) != 2:
            raise MalformedInput(f"NodePosition: expected [lo, hi], got {data!r}")
        return cls(data[0], data[1])

    def __str__(self) -> str:
        return f"[{self.lo}, {self.hi})"


def root_position(n_leaves: int) -> NodePosition:
    """The root node of a tree of ``n_leaves >= 1`` leaves."""
    return NodePosition(0, check_n_leaves(n_leaves, minimum=1))


def check_n_leaves(n_leaves: Any, minimum: int = 0) -> int:
    if not isinstance(n_leaves, int) or isinstance(n_leaves, bool) or n_leaves < minimum:
        raise MalformedInput(f"n_leaves must be an int >= {minimum}, got {n_leaves!r}")
    return n_leaves


@dataclass(frozen=True)
class InclusionProof:
    """The sibling hashes from leaf ``index`` up to the root, bottom-up (RFC 9162 audit path)."""

    index: int
    n_leaves: int
    siblings: tuple[bytes, ...]

    def __post_init__(self) -> None:
        check_n_leaves(self.n_leaves, minimum=1)
        if not isinstance(self.index, int) or isinstance(self.index, bool):
            raise MalformedInput(f"InclusionProof.index must be an int, got {self.index!r}")
        if not 0 <= self.index < self.n_leaves:
            raise MalformedInput(f"index {self.index} is outside a tree of {self.n_leaves}")
        if not isinstance(self.siblings, tuple):
            object.__setattr__(self, "siblings", tuple(self.siblings))
        for i, s in enumerate(self.siblings):
            require_bytes(s, f"InclusionProof.siblings[{i}]", HASH_SIZE)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; hashes as lowercase hex."""
        return {
            "index": self.index,
            "n_leaves": self.n_leaves,
            "siblings": [s.hex() for s in self.siblings],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> InclusionProof:
        what = "InclusionProof"
        obj = as_json_object(data, what)
        require_keys(obj, {"index", "n_leaves", "siblings"}, what)
        siblings = require_field(obj, "siblings", list, what)
        return cls(
            index=require_field(obj, "index", int, what),
            n_leaves=require_field(obj, "n_leaves", int, what),
            siblings=tuple(
                hex_decode(s, f"{what}.siblings[{i}]", HASH_SIZE) for i, s in enumerate(siblings)
            ),
        )


def audit_path_directions(index: int, n_leaves: int) -> list[bool]:
    """For each level bottom-up, whether the node on the path to ``index`` is a right child."""
    lo, hi = 0, n_leaves
    top_down: list[bool] = []
    while hi - lo > 1:
        mid = lo + split_point(hi - lo)
        if index < mid:
            top_down.append(False)
            hi = mid
        else:
            top_down.append(True)
            lo = mid
    return top_down[::-1]


def root_from_path(leaf: bytes, proof: InclusionProof) -> bytes:
    """Fold a leaf hash and its audit path up to a root (raises if the path has a wrong length)."""
    directions = audit_path_directions(proof.index, proof.n_leaves)
    if len(proof.siblings) != len(directions):
        raise InvalidProof(
            f"proof for leaf {proof.index} of {proof.n_leaves} needs {len(directions)} "
            f"sibling hashes, got {len(proof.siblings)}"
        )
    node = leaf
    for is_right, sibling in zip(directions, proof.siblings, strict=True):
        node = node_hash(sibling, node) if is_right else node_hash(node, sibling)
    return node


def verify_inclusion(
    root: bytes, leaf_data: bytes, index: int, n_leaves: int, proof: InclusionProof
) -> None:
    """Check that ``leaf_data`` is leaf ``index`` of the ``n_leaves``-leaf tree with ``root``.

    Raises ``InvalidProof`` if it is not, ``MalformedInput`` for malformed arguments.
    """
    root = require_bytes(root, "root", HASH_SIZE)
    if not isinstance(proof, InclusionProof):
        raise MalformedInput(f"proof must be an InclusionProof, got {type(proof).__name__}")
    if proof.index != index or proof.n_leaves != n_leaves:
        raise InvalidProof(
            f"proof is for leaf {proof.index} of {proof.n_leaves}, not leaf {index} of {n_leaves}"
        )
    if root_from_path(leaf_hash(leaf_data), proof) != root:
        raise InvalidProof(f"leaf {index} of {n_leaves}: the proof does not lead to the root")


class MerkleTree:
    """A Merkle tree over raw leaf data (the tree applies ``leaf_hash``), all levels kept."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        sha = hashlib.sha256
        try:
            packed = b"".join(sha(LEAF_PREFIX + leaf).digest() for leaf in leaves)
        except TypeError:
            for i, leaf in enumerate(leaves):
                require_bytes(leaf, f"leaves[{i}]")
            raise
        self._levels = _build_levels(packed)

    @classmethod
    def from_leaf_hashes(cls, hashes: Sequence[bytes]) -> MerkleTree:
        """Build from already computed leaf hashes (32 bytes each)."""
        tree = cls.__new__(cls)
        packed = b"".join(require_bytes(h, f"hashes[{i}]", HASH_SIZE) for i, h in enumerate(hashes))
        tree._levels = _build_levels(packed)
        return tree

    @property
    def n_leaves(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    @property
    def root(self) -> bytes:
        return self._levels[-1] if self.n_leaves else EMPTY_ROOT

    def leaf_hash(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        return self.node(NodePosition(index, index + 1))

    def node(self, position: NodePosition) -> bytes:
        """The hash of the node at ``position`` (``MalformedInput`` if there is no such node)."""
        if not isinstance(position, NodePosition):
            raise MalformedInput(f"position must be a NodePosition, got {type(position).__name__}")
        position.check_in_tree(self.n_leaves)
        level = (position.size - 1).bit_length()
        start = (position.lo >> level) * HASH_SIZE
        return self._levels[level][start : start + HASH_SIZE]

    def children(self, position: NodePosition) -> tuple[bytes, bytes]:
        """The (left, right) child hashes of the inner node at ``position``: a descent answer."""
        if not isinstance(position, NodePosition):
            raise MalformedInput(f"position must be a NodePosition, got {type(position).__name__}")
        position.check_in_tree(self.n_leaves)
        if position.is_leaf:
            raise MalformedInput(f"{position} is a leaf; it has no children")
        left, right = position.children()
        return self.node(left), self.node(right)

    def proof(self, index: int) -> InclusionProof:
        """The inclusion proof of leaf ``index``."""
        if not isinstance(index, int) or isinstance(index, bool):
            raise MalformedInput(f"index must be an int, got {index!r}")
        if not 0 <= index < self.n_leaves:
            raise MalformedInput(f"index {index} is outside a tree of {self.n_leaves} leaves")
        # Bottom-up over the stored levels: the sibling of node j is node j ^ 1; a lone last
        # node (promoted unchanged to the next level) has none at that level.
        siblings: list[bytes] = []
        j = index
        for level in self._levels[:-1]:
            sib = j ^ 1
            if sib * HASH_SIZE < len(level):
                siblings.append(level[sib * HASH_SIZE : (sib + 1) * HASH_SIZE])
            j >>= 1
        return InclusionProof(index, self.n_leaves, tuple(siblings))


def _build_levels(packed: bytes) -> list[bytes]:
    """All levels bottom-up from packed leaf hashes: pair neighbours, promote a lone last node."""
    sha = hashlib.sha256
    levels = [packed]
    level = packed
    while len(level) > HASH_SIZE:
        view = memoryview(level)
        n = len(level) // HASH_SIZE
        paired = b"".join(
            sha(NODE_PREFIX + view[i : i + 2 * HASH_SIZE]).digest()
            for i in range(0, (n - 1) * HASH_SIZE, 2 * HASH_SIZE)
        )
        if n % 2:
            paired += level[-HASH_SIZE:]
        level = paired
        levels.append(level)
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root of the tree over ``leaves`` (raw leaf data)."""
    return MerkleTree(leaves).root
