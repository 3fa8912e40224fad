"""State commitments: known root, single-entry proofs, tampering, malformed input."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import (
    InvalidProof,
    MalformedInput,
    StateCommitment,
    state_digest,
    tensor_digest,
    verify_state_entry,
)


def reference_state_root(entries: dict[str, bytes]) -> bytes:
    """Sorted names, length-prefixed leaves, RFC 6962 tree — independently of proofs."""

    def mth(leaves: list[bytes]) -> bytes:
        if len(leaves) == 1:
            return hashlib.sha256(b"\x00" + leaves[0]).digest()
        k = 1
        while k * 2 < len(leaves):
            k *= 2
        return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()

    names = sorted(entries, key=lambda n: n.encode())
    return mth(
        [
            b"verde/state-entry/v1\x00"
            + struct.pack("<I", len(n.encode()))
            + n.encode()
            + entries[n]
            for n in names
        ]
    )


STATE = {
    "layer.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
    "layer.bias": np.zeros(3, dtype=np.float32),
    "step": np.array(7, dtype=np.int64),
}
# Pinned: reference_state_root over the tensor digests written out with struct/hashlib.
STATE_ROOT = "aeffce89c622cd4ae54974e8ae82486428625069440da8771d99934702c7ab9f"


def _reference_tensor_digest(dtype: str, shape: tuple[int, ...], data: bytes) -> bytes:
    dims = struct.pack(f"<{len(shape) + 1}Q", len(shape), *shape)
    return hashlib.sha256(b"verde/tensor/v1\x00" + dtype.encode() + b"\x00" + dims + data).digest()


def test_known_root_and_torch_numpy_agree() -> None:
    independent = {
        "layer.weight": _reference_tensor_digest("float32", (2, 3), struct.pack("<6f", *range(6))),
        "layer.bias": _reference_tensor_digest("float32", (3,), struct.pack("<3f", 0, 0, 0)),
        "step": _reference_tensor_digest("int64", (), struct.pack("<q", 7)),
    }
    expected = reference_state_root(independent)
    assert expected.hex() == STATE_ROOT
    assert state_digest(STATE) == expected
    as_torch = {name: torch.from_numpy(v.copy()) for name, v in STATE.items()}
    assert StateCommitment.from_tensors(as_torch).root == expected
    assert StateCommitment.from_tensors(as_torch).names == ("layer.bias", "layer.weight", "step")


def test_every_entry_proves_and_tampering_fails() -> None:
    commitment = StateCommitment.from_tensors(STATE)
    for name in commitment.names:
        proof = commitment.proof(name)
        verify_state_entry(commitment.root, name, tensor_digest(STATE[name]), proof)
        with pytest.raises(InvalidProof, match=name):
            verify_state_entry(commitment.root, name, tensor_digest(STATE[name] + 1), proof)
        with pytest.raises(InvalidProof):
            verify_state_entry(commitment.root, name + "x", tensor_digest(STATE[name]), proof)
    other = commitment.names[0]
    with pytest.raises(InvalidProof):  # a proof of one entry does not prove another
        verify_state_entry(
            commitment.root, "step", tensor_digest(STATE["step"]), commitment.proof(other)
        )


@settings(max_examples=30, deadline=None)
@given(
    names=st.lists(st.text(min_size=0, max_size=8), min_size=1, max_size=12, unique=True),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_states(names: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    state = {n: rng.standard_normal(rng.integers(0, 4, size=2)).astype(np.float32) for n in names}
    commitment = StateCommitment.from_tensors(state)
    assert commitment.root == reference_state_root({n: tensor_digest(v) for n, v in state.items()})
    for n in names:
        verify_state_entry(commitment.root, n, tensor_digest(state[n]), commitment.proof(n))


def test_empty_state_and_bad_input() -> None:
    assert state_digest({}) == hashlib.sha256(b"").digest()
    commitment = StateCommitment.from_tensors(STATE)
    with pytest.raises(KeyError):
        commitment.proof("missing")
    with pytest.raises(MalformedInput):
        StateCommitment.from_tensors({1: np.zeros(1)})  # type: ignore[dict-item]
    with pytest.raises(MalformedInput):
        StateCommitment.from_tensors([("a", np.zeros(1))])  # type: ignore[arg-type]
    with pytest.raises(MalformedInput):
        verify_state_entry(commitment.root, "step", b"\x00" * 31, commitment.proof("step"))
    with pytest.raises(MalformedInput):
        verify_state_entry(commitment.root, "step", tensor_digest(STATE["step"]), {"index": 0})
