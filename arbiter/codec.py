"""Conversions between verde's protocol objects and the gRPC envelope messages.

Answers stream as one header chunk (signed message + tensor headers) followed by raw tensor
bytes in chunks; the receiver checks every size against the header and against its limit
before allocating, so a hostile peer cannot make it buffer more than it agreed to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from arbiter.proto import verde_pb2 as pb
from proofs import SignedMessage
from verde.peers.errors import PeerError
from verde.peers.messages import Answer, Query, TensorBlob

DEFAULT_CHUNK = 1 << 20
_ITEMSIZE = {"bool": 1, "uint8": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8,
             "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def query_to_pb(query: Query) -> pb.QueryRequest:
    return pb.QueryRequest(query_json=json.dumps(query.to_json(), sort_keys=True))


class MalformedRequest(ValueError):
    """A request's envelope cannot be decoded (maps to INVALID_ARGUMENT)."""


def parse_json(text: str, what: str) -> Any:
    """``json.loads`` for text from other parties: one clear error for anything malformed.

    Deeply nested documents make the stdlib parser raise RecursionError; that is bad input
    too, not an internal error.
    """
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MalformedRequest(f"{what} is not valid JSON: {type(exc).__name__}: {exc}") from None


def query_from_pb(msg: pb.QueryRequest) -> Query:
    data = parse_json(msg.query_json, "query")
    try:
        if not isinstance(data, dict):
            raise TypeError("a query is a JSON object")
        return Query.from_json(data)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise MalformedRequest(f"malformed query: {type(exc).__name__}: {exc}") from None


def signed_to_json(message: SignedMessage) -> str:
    return json.dumps(message.to_json(), sort_keys=True)


def signed_from_json(text: str) -> SignedMessage:
    try:
        return SignedMessage.from_json(json.loads(text))
    except (ValueError, RecursionError) as exc:
        raise PeerError(f"malformed signed message: {exc}") from None


def answer_to_chunks(answer: Answer, chunk_size: int = DEFAULT_CHUNK) -> Iterator[pb.AnswerChunk]:
    headers = [pb.TensorHeader(name=name, dtype=blob.dtype, shape=list(blob.shape),
                               nbytes=len(blob.data))
               for name, blob in answer.blobs.items()]
    yield pb.AnswerChunk(signed_json=signed_to_json(answer.signed), tensors=headers)
    for blob in answer.blobs.values():
        data = memoryview(blob.data)
        for start in range(0, len(data), chunk_size):
            yield pb.AnswerChunk(data=bytes(data[start: start + chunk_size]))


def answer_from_chunks(chunks: Iterable[pb.AnswerChunk], max_bytes: int) -> Answer:
    it = iter(chunks)
    try:
        head = next(it)
    except StopIteration:
        raise PeerError("empty answer stream") from None
    signed = signed_from_json(head.signed_json)
    expected = []
    total = 0
    for h in head.tensors:
        if h.dtype not in _ITEMSIZE:
            raise PeerError(f"tensor {h.name!r}: unknown dtype {h.dtype!r}")
        if any(d < 0 for d in h.shape):
            raise PeerError(f"tensor {h.name!r}: negative dimension in {list(h.shape)}")
        count = math.prod(int(d) for d in h.shape)  # Python ints: no int64 wrap-around
        if count * _ITEMSIZE[h.dtype] != h.nbytes:
            raise PeerError(f"tensor {h.name!r}: {h.nbytes} bytes do not fit {h.dtype} "
                            f"{list(h.shape)}")
        total += h.nbytes
        expected.append(h)
    if total > max_bytes:
        raise PeerError(f"answer carries {total} tensor bytes, more than the limit {max_bytes}")
    buf = bytearray()
    for chunk in it:
        buf += chunk.data
        if len(buf) > total:
            raise PeerError("answer stream carries more bytes than its headers announce")
    if len(buf) != total:
        raise PeerError(f"answer stream truncated: {len(buf)} of {total} tensor bytes")
    blobs: dict[str, TensorBlob] = {}
    offset = 0
    for h in expected:
        blobs[h.name] = TensorBlob(h.dtype, tuple(int(d) for d in h.shape),
                                   bytes(buf[offset: offset + h.nbytes]))
        offset += h.nbytes
    return Answer(signed, blobs)
