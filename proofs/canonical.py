"""The one canonical byte encoding for everything proofs signs or hashes.

Why: a signature or a digest is over bytes, but protocol messages are structured values. If two
honest implementations could encode the same value to different bytes, a valid signature would
fail to verify on the other side, and worse, a signer could claim two meanings for one
signature. So there is exactly one encoding, and anything it cannot encode unambiguously is
rejected instead of being guessed at.

Rules of ``canonical_json``:

* JSON (RFC 8259) as UTF-8, no whitespace, object keys sorted by Unicode code point.
* Values: ``dict`` with ``str`` keys, ``list``/``tuple`` (both become arrays), ``str``,
  ``int``, ``bool``, ``None`` and finite ``float``. Floats are written in Python's shortest
  round-trip form (``repr``); protocol messages should prefer integers and strings.
* Rejected with ``CanonicalEncodingError``: NaN and infinities, non-``str`` keys, strings that
  are not valid Unicode (lone surrogates), and every other type — in particular ``bytes``.
  **Bytes must be given as lowercase hex strings** (``bytes.hex()``); ``hex_decode`` reads
  them back with a length check.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from proofs.errors import CanonicalEncodingError, MalformedInput

_HEX_DIGITS = frozenset("0123456789abcdef")


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as canonical JSON bytes (see the module docstring for the rules)."""
    _check(obj, "$")
    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:  # pragma: no cover - _check catches these
        raise CanonicalEncodingError(f"value cannot be encoded canonically: {exc}") from exc


def _check(obj: Any, path: str) -> None:
    if obj is None or isinstance(obj, bool):
        return
    if isinstance(obj, int):
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise CanonicalEncodingError(f"{path}: {obj!r} is not a finite number")
        return
    if isinstance(obj, str):
        _check_str(obj, path)
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise CanonicalEncodingError(
                    f"{path}: object key {key!r} is a {type(key).__name__}, keys must be str"
                )
            _check_str(key, path)
            _check(value, f"{path}.{key}")
        return
    if isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check(value, f"{path}[{i}]")
        return
    if isinstance(obj, bytes | bytearray | memoryview):
        raise CanonicalEncodingError(f"{path}: bytes must be given as a lowercase hex string")
    raise CanonicalEncodingError(
        f"{path}: a {type(obj).__name__} cannot be encoded as canonical JSON"
    )


def _check_str(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalEncodingError(f"{path}: string is not valid Unicode ({exc.reason})") from exc


def parse_json(data: str | bytes | bytearray, what: str) -> Any:
    """Parse JSON text, rejecting NaN/Infinity literals and duplicate object keys.

    Used by every ``from_json`` that accepts text, so a document means one thing.
    """
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedInput(f"{what}: not UTF-8 text ({exc})") from exc
    if not isinstance(data, str):
        raise MalformedInput(f"{what}: expected JSON text or a dict, got {type(data).__name__}")

    def _no_constants(name: str) -> Any:
        raise MalformedInput(f"{what}: JSON constant {name} is not allowed")

    def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise MalformedInput(f"{what}: duplicate key {key!r}")
            out[key] = value
        return out

    try:
        return json.loads(data, parse_constant=_no_constants, object_pairs_hook=_unique)
    except json.JSONDecodeError as exc:
        raise MalformedInput(f"{what}: invalid JSON ({exc})") from exc


def as_json_object(data: Mapping[str, Any] | str | bytes | bytearray, what: str) -> dict[str, Any]:
    """Return ``data`` as a dict: a mapping is used as it is, text is parsed."""
    obj = dict(data) if isinstance(data, Mapping) else parse_json(data, what)
    if not isinstance(obj, dict):
        raise MalformedInput(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def hex_decode(value: Any, what: str, length: int | None = None) -> bytes:
    """Decode a lowercase hex string to bytes, checking the length in bytes if given."""
    if not isinstance(value, str):
        raise MalformedInput(f"{what}: expected a hex string, got {type(value).__name__}")
    if len(value) % 2 or not _HEX_DIGITS.issuperset(value):
        raise MalformedInput(f"{what}: {value[:80]!r} is not a lowercase hex string")
    raw = bytes.fromhex(value)
    if length is not None and len(raw) != length:
        raise MalformedInput(f"{what}: expected {length} bytes, got {len(raw)}")
    return raw


def require_bytes(value: Any, what: str, length: int | None = None) -> bytes:
    """Check that ``value`` is bytes (of ``length`` if given) and return it as ``bytes``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise MalformedInput(f"{what}: expected bytes, got {type(value).__name__}")
    raw = bytes(value)
    if length is not None and len(raw) != length:
        raise MalformedInput(f"{what}: expected {length} bytes, got {len(raw)}")
    return raw


def require_field(
    obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str
) -> Any:
    """Return ``obj[key]``, checking that it exists and has the expected JSON type."""
    if key not in obj:
        raise MalformedInput(f"{what}: missing field {key!r}")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if int in kinds and isinstance(value, bool) and bool not in kinds:
        raise MalformedInput(f"{what}: field {key!r} must be an integer, got a bool")
    if not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise MalformedInput(f"{what}: field {key!r} must be {names}, got {type(value).__name__}")
    return value


def require_keys(obj: Mapping[str, Any], allowed: set[str], what: str) -> None:
    """Reject unknown fields, so nothing unsigned or unchecked rides along in a document."""
    extra = sorted(set(obj) - allowed)
    if extra:
        raise MalformedInput(f"{what}: unknown field(s) {extra}")
