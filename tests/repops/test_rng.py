"""repops.rng: Philox4x32-10 known answers, stream state, every draw against the reference,
independence from thread count, and errors for bad arguments."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

import repops.reference.rng as RR
from repops.errors import UnsupportedInputError
from repops.rng import PhiloxStream, RngStateError, ops
from repops.rng import init as rinit
from repops.rng.philox import philox4x32_10

# Random123 kat_vectors (Salmon et al., SC'11): counter (4 words), key (2 words) -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]  # fmt: skip


@pytest.mark.parametrize(("ctr", "key", "want"), KAT)
def test_philox_known_answers(ctr: tuple, key: tuple, want: tuple) -> None:
    got = philox4x32_10(*(np.uint64(v) for v in (*ctr, *key)))
    assert tuple(int(v) for v in got) == want
    assert RR.philox4x32_10_reference(ctr, key) == want


def test_philox_known_answer_check_can_fail() -> None:
    got = philox4x32_10(*(np.uint64(v) for v in (1, 0, 0, 0, 0, 0)))
    assert tuple(int(v) for v in got) != KAT[0][2]


@pytest.mark.parametrize(
    ("seed", "stream", "offset"),
    [(0, 0, 0), (2**64 - 1, 12345, 7), (42, 2**63 + 5, 2**32 - 2), (7, 1, 2**40 + 3)],
)
def test_words_equal_reference(seed: int, stream: int, offset: int) -> None:
    s = PhiloxStream(seed, stream, offset)
    got = s.words(23)
    assert np.array_equal(got, RR.words_reference(seed, stream, offset, 23))
    assert s.offset == offset + 6  # ceil(23 / 4) blocks


def test_state_roundtrips_and_replays() -> None:
    s = PhiloxStream(2**63 + 11, 3)
    s.words(10)
    d = s.state_dict()
    t = s.state_tensor()
    a = ops.rand(s, (5, 3))
    b = ops.rand(PhiloxStream.from_state_dict(d), (5, 3))
    c = ops.rand(PhiloxStream.from_state_tensor(t), (5, 3))
    assert torch.equal(a, b) and torch.equal(a, c)
    assert PhiloxStream.from_state_tensor(t) == PhiloxStream(**d)
    assert not torch.equal(a, ops.rand(s, (5, 3)))  # the stream moved on


def test_bad_seeds_and_states_are_rejected() -> None:
    for bad in (-1, 2**64, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed"):
            PhiloxStream(bad)  # type: ignore[arg-type]
    with pytest.raises(RngStateError, match="keys"):
        PhiloxStream.from_state_dict({"seed": 1})
    with pytest.raises(RngStateError, match="bad"):
        PhiloxStream.from_state_dict({"seed": -4, "stream": 0, "offset": 0})
    with pytest.raises(RngStateError, match="shape"):
        PhiloxStream.from_state_tensor(torch.zeros(2, dtype=torch.int64))
    with pytest.raises(RngStateError, match="blocks left"):
        PhiloxStream(1, 0, 2**64 - 1).words(8)


def test_uniform_and_normal_equal_reference() -> None:
    s = PhiloxStream(9, 2, 100)
    w = RR.words_reference(9, 2, 100, 37)
    u = ops.uniform_values(s, 37, torch.float32)
    assert np.array_equal(u, RR.uniform_f32_reference(w))
    assert u.min() >= 0 and u.max() < 1
    s = PhiloxStream(9, 2, 100)
    u64 = ops.uniform_values(s, 9, torch.float64)
    assert np.array_equal(u64, RR.uniform_f64_reference(RR.words_reference(9, 2, 100, 18)))
    for n in (1, 2, 7, 64):
        s = PhiloxStream(5, 0, 3)
        z = ops.normal_values(s, n)
        wz = RR.words_reference(5, 0, 3, 2 * ((n + 1) // 2))
        assert np.array_equal(z, RR.box_muller_reference(wz, n)), n


def test_normal_has_the_right_moments() -> None:
    z = ops.normal_values(PhiloxStream(123), 200_000)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(((z > 1.96).mean()) - 0.025) < 0.002


def test_fills_follow_logical_order_and_dtype() -> None:
    a = torch.empty(4, 6)
    ops.uniform_(PhiloxStream(1), a, -2.0, 3.0)
    b = torch.empty(6, 4).t()  # a strided destination gets the same logical values
    ops.uniform_(PhiloxStream(1), b, -2.0, 3.0)
    assert torch.equal(a, b)
    u = RR.uniform_f32_reference(RR.words_reference(1, 0, 0, 24)).astype(np.float64)
    assert np.array_equal(a.numpy().reshape(-1), (-2.0 + 5.0 * u).astype(np.float32))
    h = ops.normal_(PhiloxStream(1), torch.empty(10, dtype=torch.bfloat16), 1.0, 0.5)
    z = ops.normal_values(PhiloxStream(1), 10)
    assert torch.equal(h, torch.from_numpy(1.0 + 0.5 * z).to(torch.bfloat16))
    with pytest.raises(ValueError, match="std"):
        ops.normal_(PhiloxStream(1), torch.empty(3), 0.0, -1.0)
    with pytest.raises(ValueError, match="from"):
        ops.uniform_(PhiloxStream(1), torch.empty(3), 2.0, 1.0)


def test_bernoulli_and_dropout() -> None:
    x = torch.randn(8, 16)
    s = PhiloxStream(77, 4)
    out, mask = ops.native_dropout(s, x, 0.3, True)
    w = RR.words_reference(77, 4, 0, 128)
    want_mask = (w >> np.uint32(8)).astype(np.float64) * 2.0**-24 < (1.0 - 0.3)
    assert mask.dtype == torch.bool and np.array_equal(mask.numpy().reshape(-1), want_mask)
    scale = np.float32(1.0 / 0.7)
    want = (x.numpy() * mask.numpy().astype(np.float32)) * scale
    assert np.array_equal(out.numpy(), want)
    o2, m2 = ops.native_dropout(s, x, 0.3, False)
    assert torch.equal(o2, x) and bool(m2.all()) and s.offset == 32  # no draw when not training
    o3, m3 = ops.native_dropout(PhiloxStream(1), x, 1.0, True)
    assert not m3.any() and (o3 == 0).all()
    with pytest.raises(ValueError, match="p must be"):
        ops.native_dropout(s, x, 1.5, True)
    bm = ops.bernoulli(PhiloxStream(3), torch.tensor([0.0, 1.0, 0.25, 0.75]))
    assert bm[0] == 0 and bm[1] == 1
    with pytest.raises(ValueError, match="probabilities"):
        ops.bernoulli_(PhiloxStream(3), torch.empty(3), 1.2)


def test_randint_and_randperm_equal_reference() -> None:
    r = ops.randint(PhiloxStream(11, 1), -5, 1000, (3, 7))
    w = RR.words_reference(11, 1, 0, 42)
    assert np.array_equal(r.numpy().reshape(-1), RR.randint_reference(w, -5, 1000))
    assert r.min() >= -5 and r.max() < 1000
    big = ops.randint(PhiloxStream(11), -(2**62), 2**62, (50,))
    assert np.array_equal(big.numpy(), RR.randint_reference(RR.words_reference(11, 0, 0, 100),
                                                           -(2**62), 2**62))
    p = ops.randperm(PhiloxStream(5, 9), 100)
    assert np.array_equal(p.numpy(), RR.randperm_reference(RR.words_reference(5, 9, 0, 200)))
    assert sorted(p.tolist()) == list(range(100))
    assert ops.randperm(PhiloxStream(5), 0).numel() == 0
    with pytest.raises(ValueError, match="low < high"):
        ops.randint(PhiloxStream(1), 3, 3, (2,))
    with pytest.raises(ValueError, match="n must be"):
        ops.randperm(PhiloxStream(1), -1)


def test_thread_count_changes_no_bit(num_threads: Callable[[int], None]) -> None:
    num_threads(1)
    a = ops.normal_values(PhiloxStream(8), 50_001), PhiloxStream(8).words(40_001)
    num_threads(2)
    b = ops.normal_values(PhiloxStream(8), 50_001), PhiloxStream(8).words(40_001)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_init_bounds_match_torch_formulas() -> None:
    w = torch.empty(16, 12)
    rinit.kaiming_uniform_(PhiloxStream(2), w, a=math.sqrt(5))
    gain = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    bound = math.sqrt(3.0) * gain / math.sqrt(12)
    u = RR.uniform_f32_reference(RR.words_reference(2, 0, 0, 192)).astype(np.float64)
    assert np.array_equal(w.numpy().reshape(-1), (-bound + 2 * bound * u).astype(np.float32))
    assert rinit.calculate_gain("tanh") == torch.nn.init.calculate_gain("tanh")
    conv = torch.empty(8, 3, 5, 5)
    assert rinit.fan_in_and_fan_out(conv) == (75, 200)
    with pytest.raises(ValueError, match="2 dimensions"):
        rinit.xavier_uniform_(PhiloxStream(1), torch.empty(5))
    with pytest.raises(ValueError, match="nonlinearity"):
        rinit.calculate_gain("swish")
    b = torch.empty(16)
    rinit.linear_default_init_(PhiloxStream(3), w, b)
    assert b.abs().max() <= 1 / math.sqrt(12)


def test_aten_adapters_take_the_overload_arguments() -> None:
    from repops.rng.aten import ATEN_RANDOM

    for name in ATEN_RANDOM:
        _, packet, overload = name.split(".")
        assert getattr(getattr(torch.ops.aten, packet), overload) is not None
    a = ATEN_RANDOM["aten.rand.default"](PhiloxStream(4), [3, 2], dtype=None, layout=None,
                                         device=torch.device("cpu"), pin_memory=False)
    assert torch.equal(a, ops.rand(PhiloxStream(4), (3, 2)))
    t = torch.empty(5)
    ATEN_RANDOM["aten.uniform_.default"](PhiloxStream(4), t, **{"from": -1.0, "to": 1.0},
                                         generator=None)
    assert torch.equal(t, ops.uniform_(PhiloxStream(4), torch.empty(5), -1.0, 1.0))
    p = ATEN_RANDOM["aten.randperm.default"](PhiloxStream(4), 7, dtype=torch.int32)
    assert p.dtype == torch.int32 and sorted(p.tolist()) == list(range(7))
    with pytest.raises(UnsupportedInputError, match="device"):
        ATEN_RANDOM["aten.randn.default"](PhiloxStream(4), [2], device="meta")
