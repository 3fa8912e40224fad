"""Strict readers for the JSON fields of protocol messages (one error type, the field named).

Why strict: every message a party signs is later judged against its commitments, and an
arbiter must never guess what a field meant. So a reader accepts exactly the listed fields, the
right JSON types (``bool`` is not an ``int``), 32-byte hashes as lowercase hex, and raises
:class:`MalformedMessage` naming the message and the field otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from proofs import InclusionProof, NodePosition, hex_decode
from proofs.errors import ProofError
from repops import TraceNode
from repops.dispatch.encoding import RefKey, TraceEncodingError
from verde.protocol.peers.errors import MalformedMessage

HASH_BYTES = 32


def exact_fields(data: Any, fields: AbstractSet[str], what: str,
                 optional: AbstractSet[str] = frozenset()) -> Mapping[str, Any]:
    """``data`` as an object with exactly ``fields`` (plus any of ``optional``)."""
    if not isinstance(data, Mapping):
        raise MalformedMessage(f"{what}: expected an object, got {type(data).__name__}")
    missing = sorted(fields - set(data))
    extra = sorted(set(data) - fields - optional)
    if missing or extra:
        raise MalformedMessage(f"{what}: missing fields {missing}, unknown fields {extra}")
    return data


def integer(data: Mapping[str, Any], key: str, what: str, minimum: int = 0) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MalformedMessage(f"{what}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def text(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{what}: {key} must be a non-empty string, got {value!r}")
    return value


def digest(value: Any, what: str) -> bytes:
    """A 32-byte hash given as lowercase hex."""
    try:
        return hex_decode(value, what, HASH_BYTES)
    except ProofError as exc:
        raise MalformedMessage(str(exc)) from None


def array(data: Mapping[str, Any], key: str, what: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise MalformedMessage(f"{what}: {key} must be a list, got {type(value).__name__}")
    return value


def indices(data: Mapping[str, Any], key: str, what: str) -> tuple[int, ...]:
    values = array(data, key, what)
    if not values or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                             for i in values):
        raise MalformedMessage(f"{what}: {key} must be a non-empty list of integers >= 0")
    return tuple(values)


def hash_pair(value: Any, what: str) -> tuple[bytes, bytes]:
    if not isinstance(value, list) or len(value) != 2:
        raise MalformedMessage(f"{what}: children must be a pair of hashes")
    return digest(value[0], f"{what} left child"), digest(value[1], f"{what} right child")


def position(value: Any, what: str) -> NodePosition:
    try:
        return NodePosition.from_json(value)
    except ProofError as exc:
        raise MalformedMessage(f"{what}: {exc}") from None


def proof(value: Any, what: str) -> InclusionProof:
    try:
        return InclusionProof.from_json(value)
    except (ProofError, TypeError) as exc:
        raise MalformedMessage(f"{what}: {exc}") from None


def node(value: Any, what: str) -> TraceNode:
    try:
        return TraceNode.from_json(value)
    except TraceEncodingError as exc:
        raise MalformedMessage(f"{what}: {exc}") from None


def ref(value: Any, what: str) -> RefKey:
    """A tensor reference: exactly ``{"node": i, "out": j}`` or ``{"leaf": name}``."""
    if isinstance(value, Mapping) and set(value) == {"node", "out"}:
        i, j = value["node"], value["out"]
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (i, j)):
            return ("node", i, j)
    if isinstance(value, Mapping) and set(value) == {"leaf"} and isinstance(value["leaf"], str):
        return ("leaf", value["leaf"])
    raise MalformedMessage(f"{what}: not a tensor reference: {value!r}")
