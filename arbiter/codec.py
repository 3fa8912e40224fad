"""Conversions between verde's protocol objects and the gRPC envelope messages.

Answers, state uploads and fetched state entries stream as one header chunk (signed message
or JSON payload, and tensor headers) followed by raw tensor bytes in chunks; the receiver
checks every size against the header and against its limit before allocating, so a hostile
peer cannot make it buffer more than it agreed to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from arbiter.errors import ArbiterInputError
from arbiter.proto import verde_pb2 as pb
from proofs import SignedMessage, canonical_json
from verde.protocol.peers.errors import MalformedMessage, PeerError
from verde.protocol.peers.messages import Answer, Query, TensorBlob
from verde.protocol.peers.state import StateEntries
from verde.protocol.provider.errors import StateTooLarge
from verde.protocol.provider.upload_file import UploadEntry

DEFAULT_CHUNK = 1 << 20
T = TypeVar("T")
_ITEMSIZE = {"bool": 1, "uint8": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8,
             "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def query_to_pb(query: Query) -> pb.QueryRequest:
    return pb.QueryRequest(query_json=dump_json(query.to_json()))


class MalformedRequest(ArbiterInputError):
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
        return Query.from_json(data)
    except MalformedMessage as exc:
        raise MalformedRequest(f"malformed query: {exc}") from None


def dump_json(doc: Any) -> str:
    """The one JSON text form of protocol documents on the wire and in the database."""
    return canonical_json(doc).decode("utf-8")


def signed_to_json(message: SignedMessage) -> str:
    return dump_json(message.to_json())


def signed_from_json(text: str) -> SignedMessage:
    try:
        return SignedMessage.from_json(json.loads(text))
    except (ValueError, RecursionError) as exc:
        raise PeerError(f"malformed signed message: {exc}") from None


def answer_to_chunks(answer: Answer, chunk_size: int = DEFAULT_CHUNK) -> Iterator[pb.AnswerChunk]:
    yield pb.AnswerChunk(signed_json=signed_to_json(answer.signed), tensors=_headers(answer.blobs))
    yield from _data_chunks(answer.blobs, chunk_size, lambda b: pb.AnswerChunk(data=b))


def _check_headers(headers: Iterable[pb.TensorHeader], max_bytes: int, what: str,
                   error: type[Exception], too_large: type[Exception]) -> int:
    """Validate tensor headers (dtype, shape, size, distinct names); return the byte total."""
    total = 0
    seen: set[str] = set()
    for h in headers:
        if h.name in seen:
            raise error(f"{what}: tensor {h.name!r} appears twice")
        seen.add(h.name)
        if h.dtype not in _ITEMSIZE:
            raise error(f"tensor {h.name!r}: unknown dtype {h.dtype!r}")
        if any(d < 0 for d in h.shape):
            raise error(f"tensor {h.name!r}: negative dimension in {list(h.shape)}")
        count = math.prod(int(d) for d in h.shape)  # Python ints: no int64 wrap-around
        if count * _ITEMSIZE[h.dtype] != h.nbytes:
            raise error(f"tensor {h.name!r}: {h.nbytes} bytes do not fit {h.dtype} "
                        f"{list(h.shape)}")
        total += h.nbytes
    if total > max_bytes:
        raise too_large(f"{what} carries {total} tensor bytes, more than the limit {max_bytes}")
    return total


def _read_blobs(headers: list[pb.TensorHeader], rest: Iterator[Any], total: int, what: str,
                error: type[Exception]) -> dict[str, TensorBlob]:
    """The tensors announced by ``headers`` from the data of the remaining chunks."""
    buf = bytearray()
    for chunk in rest:
        if len(buf) + len(chunk.data) > total:
            raise error(f"{what} stream carries more bytes than its headers announce")
        buf += chunk.data
    if len(buf) != total:
        raise error(f"{what} stream truncated: {len(buf)} of {total} tensor bytes")
    blobs: dict[str, TensorBlob] = {}
    offset = 0
    for h in headers:
        blobs[h.name] = TensorBlob(h.dtype, tuple(int(d) for d in h.shape),
                                   bytes(buf[offset: offset + h.nbytes]))
        offset += h.nbytes
    return blobs


def _headers(blobs: Mapping[str, TensorBlob]) -> list[pb.TensorHeader]:
    return [pb.TensorHeader(name=name, dtype=blob.dtype, shape=list(blob.shape),
                            nbytes=len(blob.data))
            for name, blob in blobs.items()]


def _first_chunk(it: Iterator[T], empty: Exception) -> T:
    """The header chunk of a stream; ``empty`` is raised when there is none."""
    try:
        return next(it)
    except StopIteration:
        raise empty from None


def _data_chunks(blobs: Mapping[str, TensorBlob], chunk_size: int,
                 make: Callable[[bytes], T]) -> Iterator[T]:
    for blob in blobs.values():
        data = memoryview(blob.data)
        for start in range(0, len(data), chunk_size):
            yield make(bytes(data[start: start + chunk_size]))


def answer_from_chunks(chunks: Iterable[pb.AnswerChunk], max_bytes: int) -> Answer:
    it = iter(chunks)
    head = _first_chunk(it, PeerError("empty answer stream"))
    signed = signed_from_json(head.signed_json)
    headers = list(head.tensors)
    total = _check_headers(headers, max_bytes, "answer", PeerError, PeerError)
    return Answer(signed, _read_blobs(headers, it, total, "answer", PeerError))


# --- state exchange -------------------------------------------------------------------------


def state_to_chunks(blobs: Mapping[str, TensorBlob],
                    chunk_size: int = DEFAULT_CHUNK) -> Iterator[pb.StateChunk]:
    """An upload: one chunk of headers, then the raw bytes in chunks."""
    yield pb.StateChunk(tensors=_headers(blobs))
    yield from _data_chunks(blobs, chunk_size, lambda b: pb.StateChunk(data=b))


def state_upload_from_chunks(chunks: Iterable[pb.StateChunk], max_bytes: int
                             ) -> tuple[list[UploadEntry], Iterator[bytes]]:
    """Server side of an upload: the announced tensors and an iterator over the data pieces
    still to come (the caller streams them to disk). ``MalformedRequest`` for a bad header
    chunk, ``StateTooLarge`` when the headers announce more than ``max_bytes`` (refused before
    any data is read); the data's length is checked by whoever consumes it
    (``verde.protocol.provider.upload_file.write_upload``)."""
    it = iter(chunks)
    head = _first_chunk(it, MalformedRequest("empty state upload"))
    if head.data:
        raise MalformedRequest("state upload: the first chunk carries only tensor headers")
    headers = list(head.tensors)
    if not headers:
        raise MalformedRequest("state upload: no tensors announced")
    _check_headers(headers, max_bytes, "state upload", MalformedRequest, StateTooLarge)
    entries = [UploadEntry(h.name, h.dtype, tuple(int(d) for d in h.shape)) for h in headers]
    return entries, (chunk.data for chunk in it)


def entries_to_chunks(entries: StateEntries,
                      chunk_size: int = DEFAULT_CHUNK) -> Iterator[pb.StateEntriesChunk]:
    yield pb.StateEntriesChunk(payload_json=dump_json(entries.payload),
                               tensors=_headers(entries.blobs))
    yield from _data_chunks(entries.blobs, chunk_size,
                            lambda b: pb.StateEntriesChunk(data=b))


def entries_from_chunks(chunks: Iterable[pb.StateEntriesChunk], max_bytes: int) -> StateEntries:
    """Client side of a fetch: ``PeerError`` for a bad, oversized or truncated stream."""
    it = iter(chunks)
    head = _first_chunk(it, PeerError("empty state entries stream"))
    try:
        payload = parse_json(head.payload_json, "state entries payload")
    except MalformedRequest as exc:
        raise PeerError(str(exc)) from None
    if not isinstance(payload, dict):
        raise PeerError("state entries payload is not a JSON object")
    headers = list(head.tensors)
    total = _check_headers(headers, max_bytes, "state entries", PeerError, PeerError)
    return StateEntries(payload, _read_blobs(headers, it, total, "state entries", PeerError))
