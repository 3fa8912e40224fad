"""Streaming tensor digest: equal to ``tensor_digest`` however the bytes are split (elements
split across pieces, NaNs of any payload, bool bytes other than 0/1, bfloat16), and a wrong
byte count refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from proofs import tensor_digest
from proofs.digest_stream import TensorDigester
from proofs.errors import MalformedInput, UnsupportedTensorError


def _raw(t: torch.Tensor) -> tuple[str, bytes]:
    name = str(t.dtype).removeprefix("torch.")
    view = t.view(torch.int16) if name == "bfloat16" else t
    return name, view.contiguous().numpy().tobytes()


def _streamed(t: torch.Tensor, cuts: list[int]) -> bytes:
    name, data = _raw(t)
    digester = TensorDigester(name, tuple(t.shape))
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        digester.update(memoryview(data)[start:cut])
        start = cut
    return digester.digest()


@pytest.mark.parametrize("seed", range(6))
def test_any_split_gives_the_tensor_digest(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    tensors = [
        torch.randn(7, 5, generator=gen),
        torch.randn(33, generator=gen, dtype=torch.float64),
        torch.randn(4, 9, generator=gen).to(torch.bfloat16),
        torch.randn(11, generator=gen).to(torch.float16),
        torch.randint(-9, 9, (3, 7), generator=gen, dtype=torch.int64),
        torch.zeros(0, 3),
    ]
    nan_payload = torch.tensor([1.0, 2.0, 3.0]).view(torch.int32)
    nan_payload[1] = 0x7FA00001  # a signalling NaN with a payload: hashed as the canonical one
    tensors.append(nan_payload.view(torch.float32))
    rng = np.random.default_rng(seed)
    for t in tensors:
        size = len(_raw(t)[1])
        cuts = [int(c) for c in rng.integers(0, size + 1, size=int(rng.integers(0, 6)))]
        assert _streamed(t, cuts) == tensor_digest(t)
    odd_bool = torch.tensor([0, 1, 7, 0, 255], dtype=torch.uint8).view(torch.bool)
    assert _streamed(odd_bool, [1, 3]) == tensor_digest(odd_bool)


def test_wrong_byte_counts_and_dtypes_are_refused() -> None:
    digester = TensorDigester("float32", (2,))
    digester.update(b"\x00" * 5)
    with pytest.raises(MalformedInput, match="5 bytes given"):
        digester.digest()  # truncated
    with pytest.raises(MalformedInput, match="9 bytes given"):
        digester.update(b"\x00" * 4)  # one byte past the end
    with pytest.raises(UnsupportedTensorError, match="complex64"):
        TensorDigester("complex64", (1,))
    with pytest.raises(MalformedInput, match="negative"):
        TensorDigester("float32", (-1,))


def test_typed_buffers_count_bytes_not_items() -> None:
    t = torch.arange(6, dtype=torch.float32)
    digester = TensorDigester("float32", (6,))
    digester.update(memoryview(t.numpy()))  # a typed buffer of 6 items, 24 bytes
    assert digester.digest() == tensor_digest(t)
    short = TensorDigester("float32", (7,))
    short.update(memoryview(t.numpy()))
    with pytest.raises(MalformedInput):
        short.digest()  # 24 of 28 bytes: one element missing
