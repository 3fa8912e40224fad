"""Exact, JSON-able encoding of an aten op's arguments for the trace (and decoding for replay).

Why exact: verde's arbiter re-executes one traced op from this record, and two honest parties
must produce byte-identical records. So floats travel as ``float.hex`` strings (every bit kept,
no decimal round trip), and every non-JSON value carries a tag so decoding is unambiguous:

==================  =============================================
Python value        encoding
==================  =============================================
Tensor              ``{"node": i, "out": j}`` or ``{"leaf": name}``
bool / int / None   itself
float               ``{"float": "0x1.8000000000000p+0"}``
complex             ``{"complex": [re.hex(), im.hex()]}``
str                 ``{"str": s}``
torch.dtype         ``{"dtype": "float32"}``
torch.device        ``{"device": "cpu"}``
torch.layout        ``{"layout": "strided"}``
torch.memory_format ``{"memory_format": "contiguous_format"}``
list / tuple        a JSON list
==================  =============================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from repops.errors import RepopsError

#: A hashable tensor reference: ("node", index, output) or ("leaf", name).
RefKey = tuple[Any, ...]

_DTYPES: dict[str, torch.dtype] = {
    str(d).removeprefix("torch."): d
    for d in vars(torch).values()
    if isinstance(d, torch.dtype)
}
_LAYOUTS: dict[str, torch.layout] = {
    str(v).removeprefix("torch."): v for v in vars(torch).values() if isinstance(v, torch.layout)
}
_MEMORY_FORMATS: dict[str, torch.memory_format] = {
    str(v).removeprefix("torch."): v
    for v in vars(torch).values()
    if isinstance(v, torch.memory_format)
}


_TAGS = frozenset({"float", "complex", "str", "dtype", "device", "layout", "memory_format"})


class TraceEncodingError(RepopsError):
    """An op argument has no exact encoding (e.g. a torch.Generator), or a record is malformed."""


def dtype_name(dtype: torch.dtype) -> str:
    """'float32' for torch.float32."""
    return str(dtype).removeprefix("torch.")


def dtype_from_name(name: str) -> torch.dtype:
    """torch.float32 for 'float32'; TraceEncodingError for anything else."""
    try:
        return _DTYPES[name]
    except KeyError:
        raise TraceEncodingError(f"unknown dtype name {name!r} in a trace record") from None


#: The device label a tracer may record instead of real devices (``Tracer(device_label="*")``),
#: so a meta replay and a CPU run give identical records; replay reads it as the CPU.
ANY_DEVICE = "*"


def encode(
    value: Any,
    tensor_ref: Callable[[torch.Tensor], dict[str, Any]],
    device_label: str | None = None,
) -> Any:
    """Encode one argument tree; tensors become refs through ``tensor_ref``; devices are
    recorded as ``device_label`` when one is given."""
    if isinstance(value, torch.Tensor):
        return tensor_ref(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, complex):
        return {"complex": [value.real.hex(), value.imag.hex()]}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, (list, tuple)):
        return [encode(v, tensor_ref, device_label) for v in value]
    if isinstance(value, torch.dtype):
        return {"dtype": dtype_name(value)}
    if isinstance(value, torch.device):
        return {"device": str(value) if device_label is None else device_label}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    raise TraceEncodingError(
        f"cannot encode an op argument of type {type(value).__name__} exactly for the trace"
    )


def encode_call(
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    tensor_ref: Callable[[torch.Tensor], Any],
    device_label: str | None = None,
) -> dict[str, Any]:
    """The trace's ``args`` tree for one call: ``{"args": [...], "kwargs": {...}}``."""
    return {
        "args": [encode(a, tensor_ref, device_label) for a in args],
        "kwargs": {k: encode(v, tensor_ref, device_label) for k, v in sorted(kwargs.items())},
    }


def ref_key(ref: Mapping[str, Any]) -> RefKey:
    """The hashable form of a tensor ref: ("node", i, j) or ("leaf", name)."""
    if "node" in ref:
        return ("node", int(ref["node"]), int(ref["out"]))
    if "leaf" in ref:
        return ("leaf", str(ref["leaf"]))
    raise TraceEncodingError(f"not a tensor reference: {dict(ref)!r}")


def is_ref(value: Any) -> bool:
    """Whether an encoded value is a tensor reference."""
    return isinstance(value, dict) and ("node" in value or "leaf" in value)


def iter_refs(tree: Any) -> list[RefKey]:
    """All tensor references in an encoded tree, in argument order (dict keys sorted)."""
    if is_ref(tree):
        return [ref_key(tree)]
    if isinstance(tree, list):
        return [r for v in tree for r in iter_refs(v)]
    if isinstance(tree, dict) and not (len(tree) == 1 and next(iter(tree)) in _TAGS):
        return [r for k in sorted(tree) for r in iter_refs(tree[k])]
    return []


def decode(value: Any, tensors: Mapping[RefKey, torch.Tensor]) -> Any:
    """Invert :func:`encode`, looking tensors up by :func:`ref_key`."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        raise TraceEncodingError(f"unexpected {type(value).__name__} in an encoded argument tree")
    if is_ref(value):
        key = ref_key(value)
        if key not in tensors:
            raise TraceEncodingError(f"no tensor given for input reference {key}")
        return tensors[key]
    if len(value) != 1:
        raise TraceEncodingError(f"malformed tagged value {value!r}")
    ((tag, payload),) = value.items()
    try:
        if tag == "float":
            return float.fromhex(payload)
        if tag == "complex":
            return complex(float.fromhex(payload[0]), float.fromhex(payload[1]))
        if tag == "str":
            return str(payload)
        if tag == "dtype":
            return dtype_from_name(payload)
        if tag == "device":
            return torch.device("cpu" if payload == ANY_DEVICE else payload)
        if tag == "layout":
            return _LAYOUTS[payload]
        if tag == "memory_format":
            return _MEMORY_FORMATS[payload]
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError):
        raise TraceEncodingError(f"malformed {tag} value {payload!r} in a trace record") from None
    raise TraceEncodingError(f"unknown tag {tag!r} in an encoded argument tree")


def decode_call(
    tree: Mapping[str, Any], tensors: Mapping[RefKey, torch.Tensor]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) from a trace ``args`` tree."""
    if not isinstance(tree, Mapping) or "args" not in tree or "kwargs" not in tree:
        raise TraceEncodingError("an op's argument tree must have 'args' and 'kwargs'")
    args = tuple(decode(a, tensors) for a in tree["args"])
    kwargs = {str(k): decode(v, tensors) for k, v in tree["kwargs"].items()}
    return args, kwargs
