"""canonical_json: exact bytes for known values, rejections, and idempotence."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import CanonicalEncodingError, MalformedInput, canonical_json, hex_decode, parse_json


def test_known_encodings() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "é"], "c": {"z": -2, "y": 1.5}}) == (
        '{"a":[true,null,"é"],"b":1,"c":{"y":1.5,"z":-2}}'.encode()
    )
    assert canonical_json((1, 2)) == b"[1,2]"
    assert canonical_json("\u2028") == '"\u2028"'.encode()
    assert canonical_json(2**70) == b"1180591620717411303424"
    assert canonical_json({"\u00e9": 1, "z": 2, "Z": 3}) == '{"Z":3,"z":2,"é":1}'.encode()


@pytest.mark.parametrize(
    "bad",
    [
        float("nan"),
        {"x": float("inf")},
        [float("-inf")],
        {1: "a"},
        {("a",): 1},
        b"bytes",
        {"x": bytearray(b"a")},
        {"x": {1, 2}},
        "\ud800",
        {"\udc00": 1},
        MappingProxyType({"a": 1}),
        object(),
    ],
)
def test_rejected_values(bad: object) -> None:
    with pytest.raises(CanonicalEncodingError) as info:
        canonical_json(bad)
    assert isinstance(info.value, ValueError)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(value=json_values)
def test_roundtrip_is_a_fixed_point(value: object) -> None:
    encoded = canonical_json(value)
    assert canonical_json(json.loads(encoded)) == encoded
    assert canonical_json(parse_json(encoded, "value")) == encoded


def test_parse_json_rejects_ambiguous_documents() -> None:
    for bad in ('{"a":1,"a":2}', "[NaN]", "[Infinity]", "{", b"\xff"):
        with pytest.raises(MalformedInput):
            parse_json(bad, "doc")


def test_hex_decode() -> None:
    assert hex_decode("00ff", "x", 2) == b"\x00\xff"
    for bad in ("0", "00FF", "0x00", " 00", "zz", 12):
        with pytest.raises(MalformedInput, match="x"):
            hex_decode(bad, "x")
    with pytest.raises(MalformedInput, match="expected 3 bytes"):
        hex_decode("00ff", "x", 3)
