"""gRPC Provider service: convert the request, call the host, convert the reply.

A provider that refuses to answer (a fault plan, or a real outage) is modelled honestly: the
call stays silent until the caller's deadline passes, which the caller sees as
DEADLINE_EXCEEDED — exactly what a dead provider looks like on the wire.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import grpc

from arbiter.caller_auth import caller_name
from arbiter.codec import (
    DEFAULT_CHUNK,
    answer_to_chunks,
    entries_to_chunks,
    parse_json,
    query_from_pb,
    signed_to_json,
    state_upload_from_chunks,
)
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.provider_endpoint import NoEndpoint, ProviderEndpoint
from arbiter.provider_host import ProviderHost
from arbiter.status import grpc_errors
from verde.protocol.peers.errors import RefusedQuery

#: Largest state a client may upload in one PutState call (tensor bytes): sized for real
#: models (a 0.5B-parameter float32 model's parameters) and their datasets. The upload is
#: streamed to the provider's disk as it arrives (``verde.protocol.provider.uploads``).
DEFAULT_MAX_STATE_BYTES = 2 << 30


class ProviderServicer(rpc.ProviderServicer):
    def __init__(self, host: ProviderHost, chunk_size: int = DEFAULT_CHUNK,
                 max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
                 endpoint: ProviderEndpoint | None = None) -> None:
        self.host = host
        #: Where this provider vouches it answers (None: it vouches for nothing, and an
        #: arbiter will not count its silence against it -- nor reach it).
        self.endpoint = endpoint
        self.chunk_size = chunk_size
        self.max_state_bytes = max_state_bytes

    @grpc_errors
    def Identity(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.IdentityReply:
        return pb.IdentityReply(public_key=self.host.identity.hex())

    @grpc_errors
    def Endpoint(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.SignedEnvelope:
        return pb.SignedEnvelope(message_json=signed_to_json(self._endpoint().record().signed))

    @grpc_errors
    def Challenge(self, request: pb.ChallengeRequest, context: grpc.ServicerContext
                  ) -> pb.SignedEnvelope:
        answer = self._endpoint().answer(request.nonce, request.address)
        return pb.SignedEnvelope(message_json=signed_to_json(answer))

    def _endpoint(self) -> ProviderEndpoint:
        if self.endpoint is None:
            raise NoEndpoint("this provider advertises no address")
        return self.endpoint

    @grpc_errors
    def SubmitJob(self, request: pb.JobRequest, context: grpc.ServicerContext) -> pb.JobRef:
        return pb.JobRef(job_id=self.host.submit(parse_json(request.spec_json, "job spec"),
                                                 client=caller_name()))

    @grpc_errors
    def GetStatus(self, request: pb.JobRef, context: grpc.ServicerContext) -> pb.JobStatus:
        s = self.host.status(request.job_id)
        return pb.JobStatus(job_id=request.job_id, state=s.state, steps_done=s.steps_done,
                            steps_total=s.steps_total, error=s.error)

    @grpc_errors
    def GetResult(self, request: pb.JobRef, context: grpc.ServicerContext) -> pb.SignedEnvelope:
        return pb.SignedEnvelope(message_json=signed_to_json(self.host.result(request.job_id)))

    @grpc_errors
    def Answer(self, request: pb.QueryRequest, context: grpc.ServicerContext
               ) -> Iterator[pb.AnswerChunk]:
        query = query_from_pb(request)
        try:
            answer = self.host.answer(query)
        except RefusedQuery:
            _stay_silent(context)
            return
        yield from answer_to_chunks(answer, self.chunk_size)

    @grpc_errors
    def PutState(self, request_iterator: Iterable[pb.StateChunk],
                 context: grpc.ServicerContext) -> pb.StateRef:
        entries, data = state_upload_from_chunks(request_iterator, self.max_state_bytes)
        return pb.StateRef(root=self.host.receive_state(entries, data))

    @grpc_errors
    def FetchState(self, request: pb.FetchStateRequest, context: grpc.ServicerContext
                   ) -> Iterator[pb.StateEntriesChunk]:
        entries = self.host.fetch_state(request.job_id, list(request.names))
        yield from entries_to_chunks(entries, self.chunk_size)


def _stay_silent(context: grpc.ServicerContext) -> None:
    remaining = context.time_remaining()
    time.sleep(min(remaining if remaining is not None else 60.0, 600.0) + 0.05)
