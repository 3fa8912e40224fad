"""Merkle trees: RFC 6962 known answers, proofs of every leaf, tampering, malformed input."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import (
    EMPTY_ROOT,
    InclusionProof,
    InvalidProof,
    MalformedInput,
    MerkleTree,
    NodePosition,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_inclusion,
)


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH, written out independently of proofs.merkle."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(
        b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])
    ).digest()


# Leaves and roots of the Certificate Transparency reference test vectors (RFC 6962 trees).
CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
             bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(1, 9))
def test_ct_known_roots(n: int) -> None:
    assert reference_root(CT_LEAVES[:n]).hex() == CT_ROOTS[n - 1]
    assert MerkleTree(CT_LEAVES[:n]).root.hex() == CT_ROOTS[n - 1]
    assert merkle_root(CT_LEAVES[:n]).hex() == CT_ROOTS[n - 1]


def test_known_proof_five_leaves() -> None:
    # Leaf 2 of 5: path is sibling leaf 3, then the node over leaves [0, 2), then leaf 4.
    lh = [hashlib.sha256(b"\x00" + d).digest() for d in CT_LEAVES[:5]]
    n01 = hashlib.sha256(b"\x01" + lh[0] + lh[1]).digest()
    proof = MerkleTree(CT_LEAVES[:5]).proof(2)
    assert proof.siblings == (lh[3], n01, lh[4])
    assert proof.to_json() == {
        "index": 2,
        "n_leaves": 5,
        "siblings": [lh[3].hex(), n01.hex(), lh[4].hex()],
    }


def test_hash_primitives_are_domain_separated() -> None:
    a, b = b"\x11" * 32, b"\x22" * 32
    assert leaf_hash(a + b) == hashlib.sha256(b"\x00" + a + b).digest()
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert leaf_hash(a + b) != node_hash(a, b)


def test_second_preimage_inner_node_as_leaf_fails() -> None:
    # The classic attack: present the 64 bytes of an inner node as a leaf of a shorter tree.
    leaves = [b"a", b"b", b"c", b"d"]
    tree = MerkleTree(leaves)
    fake_leaf = leaf_hash(b"a") + leaf_hash(b"b")
    forged = InclusionProof(0, 2, (tree.node(NodePosition(2, 4)),))
    with pytest.raises(InvalidProof):
        verify_inclusion(tree.root, fake_leaf, 0, 2, forged)


def test_empty_tree() -> None:
    tree = MerkleTree([])
    assert tree.root == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert tree.n_leaves == 0
    with pytest.raises(MalformedInput):
        tree.proof(0)


@settings(max_examples=40, deadline=None)
@given(leaves=st.lists(st.binary(max_size=40), min_size=1, max_size=70))
def test_every_proof_of_every_leaf_verifies(leaves: list[bytes]) -> None:
    tree = MerkleTree(leaves)
    assert tree.root == reference_root(leaves)
    assert tree.n_leaves == len(leaves)
    for i, leaf in enumerate(leaves):
        proof = tree.proof(i)
        verify_inclusion(tree.root, leaf, i, len(leaves), proof)
        back = InclusionProof.from_json(json.loads(json.dumps(proof.to_json())))
        assert back == proof
        verify_inclusion(tree.root, leaf, i, len(leaves), back)
    assert MerkleTree.from_leaf_hashes([leaf_hash(x) for x in leaves]).root == tree.root


def _flip(data: bytes, pos: int, mask: int) -> bytes:
    pos %= len(data)
    return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1 :]


@settings(max_examples=80, deadline=None)
@given(
    leaves=st.lists(st.binary(min_size=1, max_size=16), min_size=2, max_size=40),
    pick=st.integers(0, 10**6),
    pos=st.integers(0, 10**6),
    mask=st.integers(1, 255),
)
def test_flipping_any_byte_breaks_verification(leaves, pick, pos, mask) -> None:
    tree = MerkleTree(leaves)
    i = pick % len(leaves)
    proof = tree.proof(i)
    n = len(leaves)
    with pytest.raises(InvalidProof):  # the leaf
        verify_inclusion(tree.root, _flip(leaves[i], pos, mask), i, n, proof)
    with pytest.raises(InvalidProof):  # the root
        verify_inclusion(_flip(tree.root, pos, mask), leaves[i], i, n, proof)
    k = pick % len(proof.siblings)  # a sibling hash
    bad = [*proof.siblings]
    bad[k] = _flip(bad[k], pos, mask)
    with pytest.raises(InvalidProof):
        verify_inclusion(tree.root, leaves[i], i, n, InclusionProof(i, n, tuple(bad)))
    text = json.dumps(proof.to_json(), separators=(",", ":")).encode()  # the serialised proof
    with pytest.raises((InvalidProof, MalformedInput)):
        verify_inclusion(
            tree.root, leaves[i], i, n, InclusionProof.from_json(_flip(text, pos, mask))
        )


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 40), pick=st.integers(0, 10**6), other=st.integers(0, 10**6))
def test_proof_for_another_index_or_size_fails(n: int, pick: int, other: int) -> None:
    leaves = [bytes([i]) for i in range(n)]
    tree = MerkleTree(leaves)
    i, j = pick % n, other % n
    if i != j:
        with pytest.raises(InvalidProof):
            verify_inclusion(
                tree.root, leaves[i], i, n, InclusionProof(i, n, tree.proof(j).siblings)
            )
    with pytest.raises(InvalidProof):
        verify_inclusion(tree.root, leaves[i], i, n + 1, tree.proof(i))


def test_truncated_and_extended_proofs() -> None:
    tree = MerkleTree([bytes([i]) for i in range(11)])
    proof = tree.proof(6)
    for siblings in (proof.siblings[:-1], (*proof.siblings, b"\x00" * 32), ()):
        with pytest.raises(InvalidProof, match="sibling hashes"):
            verify_inclusion(tree.root, b"\x06", 6, 11, InclusionProof(6, 11, siblings))


@pytest.mark.parametrize(
    "doc",
    [
        {"index": 0, "n_leaves": 2, "siblings": ["zz" * 32]},
        {"index": 0, "n_leaves": 2, "siblings": ["AB" * 32]},
        {"index": 0, "n_leaves": 2, "siblings": ["ab" * 31]},
        {"index": 0, "n_leaves": 2, "siblings": "ab" * 32},
        {"index": 5, "n_leaves": 2, "siblings": []},
        {"index": -1, "n_leaves": 2, "siblings": []},
        {"index": True, "n_leaves": 2, "siblings": []},
        {"index": 0, "n_leaves": 0, "siblings": []},
        {"index": 0, "siblings": []},
        {"index": 0, "n_leaves": 2, "siblings": [], "extra": 1},
        "[1, 2]",
        "{not json",
    ],
)
def test_malformed_proofs_are_rejected_clearly(doc) -> None:
    with pytest.raises(MalformedInput):
        InclusionProof.from_json(doc)


def test_malformed_arguments() -> None:
    tree = MerkleTree([b"a", b"b", b"c"])
    with pytest.raises(MalformedInput):
        MerkleTree([b"a", "b"])  # type: ignore[list-item]
    with pytest.raises(MalformedInput):
        verify_inclusion(b"\x00" * 31, b"a", 0, 3, tree.proof(0))
    with pytest.raises(MalformedInput):
        node_hash(b"\x00" * 32, b"\x00" * 33)
    with pytest.raises(MalformedInput):
        tree.children(NodePosition(1, 3))  # not a node of this tree
    with pytest.raises(MalformedInput):
        tree.children(NodePosition(2, 3))  # a leaf
    with pytest.raises(MalformedInput):
        NodePosition(3, 3)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 100))
def test_children_match_node_hashes(n: int) -> None:
    tree = MerkleTree([bytes([i % 256, i // 256]) for i in range(n)])
    stack = [NodePosition(0, n)]
    seen = 0
    while stack:
        pos = stack.pop()
        pos.check_in_tree(n)
        seen += 1
        if pos.is_leaf:
            assert tree.node(pos) == leaf_hash(bytes([pos.lo % 256, pos.lo // 256]))
            continue
        left, right = tree.children(pos)
        assert node_hash(left, right) == tree.node(pos)
        stack.extend(pos.children())
    assert seen == 2 * n - 1
