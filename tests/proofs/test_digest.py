"""Tensor digest: known answers (pinned hex from an independent hashlib computation),
layout independence, NaN canonicalisation, numpy/torch agreement, rejections."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from proofs import UnsupportedTensorError, digest_hex, tensor_digest
from proofs.errors import MalformedInput


def reference_digest(dtype: str, shape: tuple[int, ...], data: bytes) -> str:
    """The digest rule written out independently of proofs.digest."""
    header = (
        b"verde/tensor/v1\x00"
        + dtype.encode("ascii")
        + b"\x00"
        + struct.pack("<Q", len(shape))
        + b"".join(struct.pack("<Q", d) for d in shape)
    )
    return hashlib.sha256(header + data).hexdigest()


F32_DATA = (
    struct.pack("<3f", 1.5, -2.0, 0.0)
    + struct.pack("<f", 3.25)
    + struct.pack("<I", 0x7FC00000)  # canonical NaN
    + struct.pack("<f", -0.0)
)
KNOWN = {
    "f32": ("float32", (2, 3), F32_DATA,
            "d4c95ed00f4d4f873afd28fc5540e730d680ea0873fa39c8cdcb559be800acba"),
    "bf16": ("bfloat16", (3,), struct.pack("<3H", 0x3F80, 0xC020, 0x7FC0),
             "3fee002434de80346fd32607bd5d18518ef79dce7d683f888c72767741e1cc75"),
    "i64": ("int64", (3,), struct.pack("<3q", 1, -1, 2**40),
            "6dcd3107029ac647e3abc7009ee8228d306650afc4e9d87277a18fc40aad444c"),
    "bool": ("bool", (2, 2), bytes([1, 0, 0, 1]),
             "5d0a2a22b1d8de0fd2802750e0b021424806c8eb88aa1450de8de79db44db543"),
    "f64_scalar": ("float64", (), struct.pack("<d", 2.0),
                   "7acf00e9bf26b9386187f67222af9683e02adabd5ed305f7add984a55eab0745"),
    "f16_empty": ("float16", (0, 3), b"",
                  "41a62f4a2d2b140b6ab600b54be55f12d8d012feaa0615b701ba54d6ed253560"),
    "f16": ("float16", (2,), struct.pack("<2H", 0x3C00, 0x7E00),
            "58fb9ef355d4eec467582eca760e8d1deebddf7b0335d42908c3d3379e412cc0"),
    "u8": ("uint8", (4,), bytes([0, 1, 254, 255]),
           "0cdc49fb5bd9c57d973cd240091d321b505d7423ff5b6d4c3a65971e44e59bcf"),
}  # fmt: skip


def _nan_f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def known_inputs(name: str) -> list[object]:
    """The same logical tensor as numpy and torch objects, in several layouts."""
    if name == "f32":
        a = np.array([[1.5, -2.0, 0.0], [3.25, np.nan, -0.0]], dtype=np.float32)
        a.view(np.uint32)[1, 1] = 0xFFC12345  # a negative, payload-carrying NaN
        return [a, np.asfortranarray(a), a.astype(">f4"), torch.from_numpy(a.copy())]
    if name == "bf16":
        t = torch.tensor([1.0, -2.5, float("nan")], dtype=torch.bfloat16)
        return [t, torch.tensor([1.0, -2.5, -float("nan")], dtype=torch.bfloat16)]
    if name == "i64":
        a = np.array([1, -1, 2**40], dtype=np.int64)
        return [a, a.astype(">i8"), torch.tensor([1, -1, 2**40])]
    if name == "bool":
        a = np.array([[True, False], [False, True]])
        return [a, a.T.copy().T, torch.from_numpy(a.copy())]
    if name == "f64_scalar":
        return [np.float64(2.0), np.array(2.0), torch.tensor(2.0, dtype=torch.float64)]
    if name == "f16_empty":
        return [np.zeros((0, 3), np.float16), torch.zeros(0, 3, dtype=torch.float16)]
    if name == "f16":
        a = np.array([1.0, np.nan], dtype=np.float16)
        a.view(np.uint16)[1] = 0xFE01
        return [a, torch.tensor([1.0, float("nan")], dtype=torch.float16)]
    if name == "u8":
        a = np.array([0, 1, 254, 255], dtype=np.uint8)
        return [a, a[::-1].copy()[::-1], torch.from_numpy(a.copy())]
    raise KeyError(name)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_answers(name: str) -> None:
    dtype, shape, data, expected = KNOWN[name]
    assert reference_digest(dtype, shape, data) == expected  # the pinned vector is right
    for x in known_inputs(name):
        assert digest_hex(x) == expected, (name, type(x))
        assert tensor_digest(x) == bytes.fromhex(expected)


def test_dtype_and_shape_are_bound() -> None:
    a = np.arange(6, dtype=np.int32)
    digests = {
        tensor_digest(a),
        tensor_digest(a.reshape(2, 3)),
        tensor_digest(a.reshape(3, 2)),
        tensor_digest(a.view(np.float32)),
        tensor_digest(a.view(np.uint32)),
    }
    assert len(digests) == 5


def test_bool_bytes_are_canonical() -> None:
    odd = np.array([0, 1, 2, 255], dtype=np.uint8).view(np.bool_)
    assert tensor_digest(odd) == tensor_digest(np.array([False, True, True, True]))
    assert tensor_digest(odd) != tensor_digest(np.array([False, True, True, False]))


def test_negative_zero_is_not_canonicalised() -> None:
    assert tensor_digest(np.array([0.0])) != tensor_digest(np.array([-0.0]))


def test_different_values_differ() -> None:
    a = np.arange(10, dtype=np.float32)
    b = a.copy()
    b[7] = np.nextafter(b[7], np.float32(100))
    assert tensor_digest(a) != tensor_digest(b)


def test_large_strided_input_matches_contiguous_copy() -> None:
    # Rows larger than the 1 MiB chunk and a column-major layout exercise the slab copy path.
    a = np.random.default_rng(1).standard_normal((3, 300_000)).astype(np.float32)
    a[2, 123_456] = np.nan
    f = np.asfortranarray(a)
    assert tensor_digest(f) == tensor_digest(np.ascontiguousarray(a))
    assert tensor_digest(a[:, ::2]) == tensor_digest(a[:, ::2].copy())


_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
           np.uint64, np.float16, np.float32, np.float64]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from(_DTYPES),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
)
def test_any_view_digests_as_its_contiguous_copy(data, dtype, shape) -> None:
    a = data.draw(hnp.arrays(dtype, shape))
    perm = data.draw(st.permutations(range(a.ndim)))
    view = a.transpose(perm)[..., ::2]
    expected = tensor_digest(np.ascontiguousarray(view))
    assert tensor_digest(view) == expected
    t = torch.from_numpy(np.ascontiguousarray(a))
    assert tensor_digest(t.permute(*perm)[..., ::2]) == expected


@settings(max_examples=40, deadline=None)
@given(bits=st.lists(st.integers(0, 2**16 - 1), min_size=1, max_size=20))
def test_bfloat16_torch_matches_bit_reference(bits: list[int]) -> None:
    raw = np.array(bits, dtype=np.uint16)
    t = torch.from_numpy(raw.view(np.int16).copy()).view(torch.bfloat16)
    canon = [0x7FC0 if (b & 0x7FFF) > 0x7F80 else b for b in bits]
    expected = reference_digest("bfloat16", (len(bits),), struct.pack(f"<{len(bits)}H", *canon))
    assert digest_hex(t) == expected
    assert digest_hex(t.float().to(torch.bfloat16)) == expected  # round trip keeps NaN canonical


def test_torch_noncontiguous_bf16_and_grad_tensors() -> None:
    t = torch.randn(4, 5, requires_grad=True)
    assert tensor_digest(t) == tensor_digest(t.detach().numpy())
    b = torch.randn(6, 7).to(torch.bfloat16)
    assert tensor_digest(b.T) == tensor_digest(b.T.contiguous())
    assert tensor_digest(b[:, 1::3]) == tensor_digest(b[:, 1::3].clone())
    e = torch.arange(3.0).expand(4, 3)  # zero strides
    assert tensor_digest(e) == tensor_digest(e.contiguous()) != tensor_digest(torch.arange(3.0))


def test_lazy_negation_views_digest_their_values() -> None:
    # A negative view shares storage with its base and only carries a "negate" bit: the
    # digest must be of the values it stands for, not of the storage.
    t = torch.tensor([1.5, -2.0, 3.0])
    negated = torch._neg_view(t)
    assert negated.is_neg()
    assert tensor_digest(negated) == tensor_digest(torch.tensor([-1.5, 2.0, -3.0]))
    assert tensor_digest(negated) != tensor_digest(t)


@pytest.mark.parametrize(
    "bad",
    [
        [1.0, 2.0],
        "tensor",
        np.array([1 + 2j]),
        np.array(["a"]),
        np.array([object()]),
        np.zeros(2, dtype=[("a", "<f4")]),
        torch.zeros(2, dtype=torch.complex64),
        torch.zeros(2, device="meta"),
        torch.zeros(3).to_sparse(),
        np.ma.masked_array([1.0, 2.0], mask=[0, 1]),
    ],
    ids=["list", "str", "complex", "unicode", "object", "structured", "torch-complex", "meta",
         "sparse", "masked"],
)  # fmt: skip
def test_unsupported_inputs_are_rejected(bad: object) -> None:
    with pytest.raises(UnsupportedTensorError) as info:
        tensor_digest(bad)
    assert isinstance(info.value, MalformedInput | TypeError)
