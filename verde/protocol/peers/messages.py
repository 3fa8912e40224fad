"""Protocol messages: queries, signed answers, and tensors as raw bytes (never pickle).

Every answer is a ``proofs.SignedMessage`` over (job id, dispute id, round, kind) and a JSON
payload, so it cannot be replayed elsewhere and two different answers to one query are an
equivocation proof (Verde, Arun et al. 2025; Canetti, Riva, Rothblum 2011). Tensors travel
next to the signed payload as ``TensorBlob`` (dtype name, shape, little-endian C-order bytes —
the safetensors convention); the payload signs their canonical digests, so a blob is bound to
the answer without signing megabytes of JSON.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from proofs import MessageContext, SignedMessage, canonical_json
from proofs.digest import tensor_digest
from verde.protocol.peers.errors import MalformedMessage, PeerError
from verde.protocol.peers.fields import exact_fields, integer, text

_DTYPES = {
    "bool": (torch.bool, np.dtype("|b1")),
    "uint8": (torch.uint8, np.dtype("|u1")),
    "int8": (torch.int8, np.dtype("|i1")),
    "int16": (torch.int16, np.dtype("<i2")),
    "int32": (torch.int32, np.dtype("<i4")),
    "int64": (torch.int64, np.dtype("<i8")),
    "float16": (torch.float16, np.dtype("<f2")),
    "bfloat16": (torch.bfloat16, np.dtype("<u2")),
    "float32": (torch.float32, np.dtype("<f4")),
    "float64": (torch.float64, np.dtype("<f8")),
}
_NAMES = {t: name for name, (t, _) in _DTYPES.items()}
#: Wire dtype name -> (torch dtype, little-endian numpy storage dtype), for readers of raw
#: tensor bytes outside ``TensorBlob`` (uploads written to disk).
WIRE_DTYPES = _DTYPES


@dataclass(frozen=True)
class TensorBlob:
    """A tensor as raw bytes: dtype name, shape, little-endian row-major data."""

    dtype: str
    shape: tuple[int, ...]
    data: bytes

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> TensorBlob:
        t = t.detach().cpu().contiguous()
        if t.dtype not in _NAMES:
            raise PeerError(f"tensor dtype {t.dtype} cannot be sent")
        name = _NAMES[t.dtype]
        view = t.view(torch.int16) if name == "bfloat16" else t
        array = view.numpy().astype(_DTYPES[name][1], copy=False)
        return cls(name, tuple(t.shape), array.tobytes(order="C"))

    def to_tensor(self) -> torch.Tensor:
        if self.dtype not in _DTYPES:
            raise PeerError(f"tensor blob: unknown dtype {self.dtype!r}")
        np_dtype = _DTYPES[self.dtype][1]
        count = math.prod(self.shape)  # Python ints: a hostile shape cannot wrap to 0
        if count * np_dtype.itemsize != len(self.data):
            raise PeerError(
                f"tensor blob: {len(self.data)} bytes do not fit dtype {self.dtype} shape "
                f"{list(self.shape)}"
            )
        array = np.frombuffer(self.data, dtype=np_dtype).reshape(self.shape).copy()
        t = torch.from_numpy(array.astype(array.dtype.newbyteorder("="), copy=False))
        return t.view(torch.bfloat16) if self.dtype == "bfloat16" else t

    def digest_hex(self) -> str:
        return tensor_digest(self.to_tensor()).hex()

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape),
                "data": base64.b64encode(self.data).decode("ascii")}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorBlob:
        try:
            return cls(str(data["dtype"]), tuple(int(d) for d in data["shape"]),
                       base64.b64decode(data["data"], validate=True))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise PeerError(f"tensor blob: malformed ({exc})") from exc


@dataclass(frozen=True)
class Query:
    """One question to one party: kind and JSON params, in a round of one dispute."""

    job_id: str
    dispute_id: str
    round: int
    kind: str
    params: dict[str, Any]
    party: str = ""
    deadline_s: float = 60.0

    @property
    def context(self) -> MessageContext:
        return MessageContext(self.job_id, self.dispute_id, self.round, self.kind)

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "dispute_id": self.dispute_id, "round": self.round,
                "kind": self.kind, "params": self.params, "party": self.party,
                "deadline_s": self.deadline_s}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> Query:
        """Strict inverse of :meth:`to_json`; ``MalformedMessage`` names what is wrong."""
        what = "query"
        d = exact_fields(data, {"job_id", "dispute_id", "round", "kind", "params"}, what,
                         {"party", "deadline_s"})
        params, party, deadline = d["params"], d.get("party", ""), d.get("deadline_s", 60.0)
        if not isinstance(params, Mapping):
            raise MalformedMessage("query: params must be an object")
        if not isinstance(party, str):
            raise MalformedMessage("query: party must be a string")
        if (isinstance(deadline, bool) or not isinstance(deadline, int | float)
                or not math.isfinite(deadline) or deadline <= 0):
            raise MalformedMessage(f"query: deadline_s must be a positive number, got {deadline!r}")
        return cls(text(d, "job_id", what), text(d, "dispute_id", what),
                   integer(d, "round", what, 1), text(d, "kind", what), dict(params), party,
                   float(deadline))

    def size(self) -> int:
        return len(canonical_json(self.to_json()))


@dataclass(frozen=True)
class Answer:
    """A signed answer and the tensors it carries (keyed as the payload names them)."""

    signed: SignedMessage
    blobs: dict[str, TensorBlob] = field(default_factory=dict)

    def size(self) -> int:
        """Bytes on the wire: canonical JSON of the signed message plus raw tensor bytes."""
        return len(canonical_json(self.signed.to_json())) + sum(
            len(b.data) + 64 for b in self.blobs.values()
        )
