"""Seeded mutations of real gRPC requests, sent as raw bytes to a provider and an arbiter.

Each request starts from a valid message of a real exchange (a job spec, a dispute's opening
with signed results and endpoint records, a dispute query, a state upload...) and is broken
in one seeded way: at the byte level (bit flips, truncation, inserted or duplicated bytes, a
random length prefix) so that protobuf decoding itself is attacked, or at the field level
(JSON texts truncated, retyped, nested, numbers out of range, strings of odd characters).
Sent as raw bytes, so what the server sees is exactly what a hostile client could send.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from arbiter.proto import verde_pb2 as pb

PROVIDER = "/verde.v1.Provider/"
ARBITER = "/verde.v1.Arbiter/"
#: gRPC statuses that mean the server failed, not the request.
SERVER_FAULTS = ("INTERNAL", "UNKNOWN", "DATA_LOSS")


@dataclass(frozen=True)
class Target:
    """One method and the valid request(s) its mutations start from."""

    path: str
    shape: str  # "unary", "server_stream" or "client_stream"
    bases: Sequence[Any]  # messages (client_stream: lists of messages)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """One to three byte-level mutations of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        if op == 0 and out:  # flip a bit
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:  # truncate
            del out[rng.randrange(len(out)):]
        elif op == 2:  # insert random bytes
            i = rng.randrange(len(out) + 1)
            out[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and out:  # duplicate a slice
            i = rng.randrange(len(out))
            out[i:i] = out[i:i + rng.randint(1, 64)]
        elif op == 4:  # a field with a random tag and an absurd length prefix
            out += bytes([rng.randrange(256)]) + b"\xff\xff\xff\xff\x0f"
        elif out:  # overwrite a byte with a random one
            out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def mutate_text(rng: random.Random, text: str) -> str:
    """A broken variant of a (usually JSON) text field."""
    choice = rng.randrange(10)
    if choice == 0:
        return text[: rng.randrange(len(text) + 1)]
    if choice == 1:
        return "".join(chr(rng.randrange(1, 0xD7FF)) for _ in range(rng.randrange(0, 40)))
    if choice == 2:
        return "[" * rng.randrange(1, 5000) + "]" * rng.randrange(0, 5000)
    if choice == 3:
        return rng.choice(["", "null", "[]", "{}", "0", "true", '"x"', "1e999", "-0"])
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return text + rng.choice(["}", "\u0000", "\\", '"'])
    if isinstance(doc, dict) and doc:
        key = rng.choice(sorted(doc))
        doc[key] = rng.choice([None, -1, 2**70, -(2**64), 1.5, "x" * rng.randrange(200), [],
                               {"a": [[[1]]]}, True, "\ud7ff", 10**30])
        if rng.random() < 0.3:
            doc.pop(rng.choice(sorted(doc)), None)
        return json.dumps(doc)
    return json.dumps([doc, doc])


def mutate_fields(rng: random.Random, message: Any) -> Any:
    """A copy of ``message`` with one or more string / number / list fields broken."""
    out = type(message)()
    out.CopyFrom(message)
    fields = list(out.DESCRIPTOR.fields)
    for _ in range(rng.randint(1, 2)):
        field = rng.choice(fields)
        name = field.name
        if _repeated(field):
            items = getattr(out, name)
            if field.type == field.TYPE_MESSAGE:
                if len(items) and rng.random() < 0.5:
                    del items[rng.randrange(len(items))]
                elif len(items):
                    items.add().CopyFrom(mutate_fields(rng, items[rng.randrange(len(items))]))
            elif field.type == field.TYPE_STRING:
                items.append(rng.choice(["", "x" * 300, "../../etc", "\u2603"]))
            elif field.type == field.TYPE_BYTES:
                items.append(rng.randbytes(rng.randrange(64)))
            elif field.type in (field.TYPE_UINT32, field.TYPE_UINT64, field.TYPE_FIXED64):
                items.append(rng.choice([0, 1, 2**32 - 1]))
            elif field.type != field.TYPE_BOOL and field.cpp_type != field.CPPTYPE_ENUM:
                items.append(rng.choice([0, -1, 2**31 - 1, 3]))
        elif field.type == field.TYPE_STRING:
            setattr(out, name, mutate_text(rng, getattr(out, name)))
        elif field.type == field.TYPE_BYTES:
            setattr(out, name, mutate_bytes(rng, getattr(out, name)))
        elif field.type == field.TYPE_MESSAGE:
            getattr(out, name).CopyFrom(mutate_fields(rng, getattr(out, name)))
        elif field.type in (field.TYPE_INT64, field.TYPE_SINT64, field.TYPE_SFIXED64):
            setattr(out, name, rng.choice([0, -1, 2**63 - 1, -(2**63)]))
        elif field.type in (field.TYPE_UINT64, field.TYPE_FIXED64):
            setattr(out, name, rng.choice([0, 2**64 - 1]))
        elif field.type in (field.TYPE_INT32, field.TYPE_SINT32):
            setattr(out, name, rng.choice([0, -1, 2**31 - 1, -(2**31)]))
        elif field.type == field.TYPE_UINT32:
            setattr(out, name, rng.choice([0, 2**32 - 1]))
        elif field.type == field.TYPE_BOOL:
            setattr(out, name, not getattr(out, name))
    return out


def _repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6; label() is deprecated there
    return bool(flag) if flag is not None else field.label == field.LABEL_REPEATED


def mutated(rng: random.Random, message: Any) -> bytes:
    """``message`` broken at the field or the byte level, serialized."""
    if message.DESCRIPTOR.fields and rng.random() < 0.5:
        return bytes(mutate_fields(rng, message).SerializeToString())
    return mutate_bytes(rng, message.SerializeToString())


def send(channel: grpc.Channel, rng: random.Random, target: Target, timeout_s: float
         ) -> str:
    """Send one mutation of ``target``; the status code name it ended with."""
    base = rng.choice(list(target.bases))
    try:
        if target.shape == "client_stream":
            chunks: Iterator[bytes] = iter([mutated(rng, m) if rng.random() < 0.5
                                            else m.SerializeToString() for m in base])
            channel.stream_unary(target.path)(chunks, timeout=timeout_s)
        elif target.shape == "server_stream":
            for _ in channel.unary_stream(target.path)(mutated(rng, base), timeout=timeout_s):
                pass
        else:
            channel.unary_unary(target.path)(mutated(rng, base), timeout=timeout_s)
    except grpc.RpcError as err:
        return str(err.code().name)
    return "OK"


def provider_targets(spec_json: str, job_id: str, query_json: str, address: str,
                     upload: Sequence[pb.StateChunk]) -> list[Target]:
    """The Provider methods, each from a valid request of the bench's real exchange."""
    return [
        Target(PROVIDER + "Identity", "unary", [pb.Empty()]),
        Target(PROVIDER + "Endpoint", "unary", [pb.Empty()]),
        Target(PROVIDER + "Challenge", "unary",
               [pb.ChallengeRequest(nonce="ab" * 16, address=address)]),
        Target(PROVIDER + "SubmitJob", "unary", [pb.JobRequest(spec_json=spec_json)]),
        Target(PROVIDER + "GetStatus", "unary", [pb.JobRef(job_id=job_id)]),
        Target(PROVIDER + "GetResult", "unary", [pb.JobRef(job_id=job_id)]),
        Target(PROVIDER + "Answer", "server_stream", [pb.QueryRequest(query_json=query_json)]),
        Target(PROVIDER + "FetchState", "server_stream",
               [pb.FetchStateRequest(job_id=job_id, names=["net.0.weight"])]),
        Target(PROVIDER + "PutState", "client_stream", [list(upload)]),
    ]


def arbiter_targets(opening: pb.OpenDisputeRequest, dispute_id: str) -> list[Target]:
    """The Arbiter methods a client may call (committee methods are another service's)."""
    return [
        Target(ARBITER + "Identity", "unary", [pb.Empty()]),
        Target(ARBITER + "OpenDispute", "unary", [opening]),
        Target(ARBITER + "GetDispute", "unary", [pb.DisputeRef(dispute_id=dispute_id)]),
        Target(ARBITER + "GetCertificate", "unary", [pb.DisputeRef(dispute_id=dispute_id)]),
        Target(ARBITER + "ListDisputes", "unary", [pb.ListRequest(status="decided", limit=5)]),
    ]


Sender = Callable[[random.Random], tuple[str, str]]
