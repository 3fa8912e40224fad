"""A hostile provider for the fuzz tests: a real gRPC Provider service that lies on the wire.

It wraps an in-process cheating provider (``verde.protocol.faults.CheatingProvider``), re-signs its
result and every answer with its own key (so each hostile server is a distinct party and its
disputes are distinct), and mangles the answers to one query kind according to ``mode``:
truncated tensor streams, wrong dtypes or shapes, overflowing shapes, garbage signed JSON,
answers replayed from another dispute or another job, answers signed by a stranger, error
statuses, and messages beyond the maximum message size. The arbiter must rule against it,
never crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import grpc

from arbiter.channels import build_server
from arbiter.codec import answer_to_chunks, signed_to_json
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_endpoint import ProviderEndpoint
from proofs import MessageContext, SignedMessage, SigningKey, sign_message
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.endpoints import EndpointRecord, answer_challenge
from verde.protocol.peers.messages import Answer, Query, TensorBlob
from verde.protocol.provider.provider import Provider

# mode -> the query kind it mangles (the others are answered faithfully, re-signed)
MODES = {
    "truncated_stream": "step_children",
    "garbage_signed_json": "step_children",
    "replayed_from_other_dispute": "step_children",
    "replayed_from_other_job": "graph_children",
    "signed_by_stranger": "step_children",
    "announces_huge_tensor": "step_children",
    "wrong_dtype": "node_inputs",
    "wrong_shape": "node_inputs",
    "dropped_tensor": "node_inputs",
    "overflowing_shape": "node_inputs",
    "error_status": "step_children",
    "oversized_message": "step_children",
}
OVERSIZED = (16 << 20) + 4096  # just past the services' default maximum message size


def resign(key: SigningKey, message: SignedMessage) -> SignedMessage:
    return sign_message(key, message.context, dict(message.payload))


class HostileProvider(rpc.ProviderServicer):
    """Answers dispute queries for ``inner``'s job, mangling those of kind ``MODES[mode]``."""

    def __init__(self, inner: Provider, key: SigningKey, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown hostile mode {mode!r}; known: {sorted(MODES)}")
        self.inner = inner
        self.key = key
        self.mode = mode
        self.target = MODES[mode]
        self.mangled = 0
        # A hostile provider still vouches for its own address, like any provider: its
        # silence and its mangled answers count against it there.
        self.vouched = ProviderEndpoint(key)

    def result(self, job_id: str) -> SignedMessage:
        return resign(self.key, self.inner.result(job_id))

    def Identity(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.IdentityReply:
        return pb.IdentityReply(public_key=self.key.public_key.hex())

    def Endpoint(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.SignedEnvelope:
        return pb.SignedEnvelope(message_json=signed_to_json(self.vouched.record().signed))

    def Challenge(self, request: pb.ChallengeRequest, context: grpc.ServicerContext
                  ) -> pb.SignedEnvelope:
        answer = self.vouched.answer(request.nonce, request.address)
        return pb.SignedEnvelope(message_json=signed_to_json(answer))

    def Answer(self, request: pb.QueryRequest, context: grpc.ServicerContext
               ) -> Iterator[pb.AnswerChunk]:
        query = Query.from_json(json.loads(request.query_json))
        real = self.inner.answer(query)
        answer = Answer(resign(self.key, real.signed), dict(real.blobs))
        if query.kind != self.target:
            yield from answer_to_chunks(answer)
            return
        self.mangled += 1
        yield from getattr(self, f"_{self.mode}")(answer, context)

    # -- the mangling modes ------------------------------------------------------------
    def _truncated_stream(self, answer: Answer, context: grpc.ServicerContext
                          ) -> Iterator[pb.AnswerChunk]:
        chunks = list(answer_to_chunks(answer))
        head = chunks[0]
        head.tensors.append(pb.TensorHeader(name="extra", dtype="float32", shape=[64],
                                            nbytes=256))
        yield head
        yield from chunks[1:]
        yield pb.AnswerChunk(data=b"\0" * 100)  # 100 of the 256 announced bytes

    def _garbage_signed_json(self, answer: Answer, context: grpc.ServicerContext
                             ) -> Iterator[pb.AnswerChunk]:
        yield pb.AnswerChunk(signed_json='{"signer": 12, "payload": [')

    def _replayed_from_other_dispute(self, answer: Answer, context: grpc.ServicerContext
                                     ) -> Iterator[pb.AnswerChunk]:
        ctx = answer.signed.context
        other = MessageContext(ctx.job_id, "0" * 64, ctx.round, ctx.kind)
        yield from answer_to_chunks(Answer(sign_message(self.key, other,
                                                        dict(answer.signed.payload))))

    def _replayed_from_other_job(self, answer: Answer, context: grpc.ServicerContext
                                 ) -> Iterator[pb.AnswerChunk]:
        ctx = answer.signed.context
        other = MessageContext("1" * 64, ctx.dispute_id, ctx.round, ctx.kind)
        yield from answer_to_chunks(Answer(sign_message(self.key, other,
                                                        dict(answer.signed.payload)),
                                           dict(answer.blobs)))

    def _signed_by_stranger(self, answer: Answer, context: grpc.ServicerContext
                            ) -> Iterator[pb.AnswerChunk]:
        stranger = SigningKey.from_seed(b"stranger".ljust(32, b"\0"))
        yield from answer_to_chunks(Answer(resign(stranger, answer.signed)))

    def _announces_huge_tensor(self, answer: Answer, context: grpc.ServicerContext
                               ) -> Iterator[pb.AnswerChunk]:
        yield pb.AnswerChunk(signed_json=json.dumps(answer.signed.to_json()),
                             tensors=[pb.TensorHeader(name="huge", dtype="float32",
                                                      shape=[1 << 38], nbytes=1 << 40)])

    def _wrong_dtype(self, answer: Answer, context: grpc.ServicerContext
                     ) -> Iterator[pb.AnswerChunk]:
        blobs = {k: replace(b, dtype="int32" if b.dtype == "float32" else "float32")
                 if len(b.data) % 4 == 0 else b for k, b in answer.blobs.items()}
        yield from answer_to_chunks(Answer(answer.signed, blobs))

    def _wrong_shape(self, answer: Answer, context: grpc.ServicerContext
                     ) -> Iterator[pb.AnswerChunk]:
        blobs = {k: replace(b, shape=tuple(reversed(b.shape)) if len(set(b.shape)) > 1
                            else (1, *b.shape)) for k, b in answer.blobs.items()}
        yield from answer_to_chunks(Answer(answer.signed, blobs))

    def _dropped_tensor(self, answer: Answer, context: grpc.ServicerContext
                        ) -> Iterator[pb.AnswerChunk]:
        yield from answer_to_chunks(Answer(answer.signed, {}))

    def _overflowing_shape(self, answer: Answer, context: grpc.ServicerContext
                           ) -> Iterator[pb.AnswerChunk]:
        # 2**62 * 4 elements wrap to 0 in int64, so "0 bytes" seems to fit the header.
        blobs = {k: TensorBlob("float32", (1 << 62, 4), b"") for k in answer.blobs}
        yield from answer_to_chunks(Answer(answer.signed, blobs))

    def _error_status(self, answer: Answer, context: grpc.ServicerContext
                      ) -> Iterator[pb.AnswerChunk]:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "I would rather not say")
        yield from ()  # pragma: no cover - abort raises

    def _oversized_message(self, answer: Answer, context: grpc.ServicerContext
                           ) -> Iterator[pb.AnswerChunk]:
        yield from answer_to_chunks(answer)
        yield pb.AnswerChunk(data=b"\0" * OVERSIZED)


def serve_hostile(inner: Provider, key: SigningKey, mode: str
                  ) -> tuple[grpc.Server, str, HostileProvider]:
    """Start a hostile provider on 127.0.0.1 (OS-chosen port); it may send big messages."""
    servicer = HostileProvider(inner, key, mode)
    server, port = build_server("127.0.0.1:0",
                                lambda s: rpc.add_ProviderServicer_to_server(servicer, s),
                                max_message=64 << 20, workers=4)
    servicer.vouched.advertise(f"127.0.0.1:{port}")
    return server, f"127.0.0.1:{port}", servicer


class EndpointImpostor(rpc.ProviderServicer):
    """Serves only ``Endpoint`` and ``Challenge``: a fixed record (``None``: none), and either a
    fixed (replayed) challenge answer or a fresh one signed by ``key`` (``None``: refuses).

    It plays whoever holds an address that is not theirs: a hijacker answering with its own
    key, a replayer of a captured answer, a relay serving someone else's genuine record.
    """

    def __init__(self, record: EndpointRecord | None = None, key: SigningKey | None = None,
                 replayed: SignedMessage | None = None) -> None:
        self.record, self.key, self.replayed = record, key, replayed

    def Endpoint(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.SignedEnvelope:
        if self.record is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no record here")
        return pb.SignedEnvelope(message_json=signed_to_json(self.record.signed))

    def Challenge(self, request: pb.ChallengeRequest, context: grpc.ServicerContext
                  ) -> pb.SignedEnvelope:
        if self.replayed is not None:
            return pb.SignedEnvelope(message_json=signed_to_json(self.replayed))
        if self.key is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server signs no challenges")
        answer = answer_challenge(self.key, request.nonce, request.address)
        return pb.SignedEnvelope(message_json=signed_to_json(answer))


class Withholder(rpc.ProviderServicer):
    """Takes any job, reports it done, and never hands over a result."""

    def SubmitJob(self, request: pb.JobRequest, context: grpc.ServicerContext) -> pb.JobRef:
        return pb.JobRef(job_id=JobSpec.from_mapping(json.loads(request.spec_json)).job_id)

    def GetStatus(self, request: pb.JobRef, context: grpc.ServicerContext) -> pb.JobStatus:
        return pb.JobStatus(job_id=request.job_id, state="done", steps_done=1, steps_total=1)

    def GetResult(self, request: pb.JobRef, context: grpc.ServicerContext
                  ) -> pb.SignedEnvelope:
        context.abort(grpc.StatusCode.NOT_FOUND, "no result for you")
        raise AssertionError("unreachable")  # pragma: no cover - abort raises


def serve_servicer(servicer: rpc.ProviderServicer) -> tuple[grpc.Server, str]:
    """Start ``servicer`` as a Provider service on 127.0.0.1 (OS-chosen port)."""
    server, port = build_server("127.0.0.1:0",
                                lambda s: rpc.add_ProviderServicer_to_server(servicer, s))
    return server, f"127.0.0.1:{port}"
