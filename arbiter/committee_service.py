"""The committee calls of the gRPC Arbiter service: ``Witness`` and ``CoSign``.

Thin like every servicer: convert the request, call the arbiter's committee seat
(:class:`arbiter.committee.CommitteeSeat`), convert the reply; errors become statuses in
:mod:`arbiter.status` (a refused co-signature is FAILED_PRECONDITION with the reason).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from arbiter.codec import MalformedRequest, parse_json
from arbiter.committee import CommitteeSeat, NotACommitteeMember
from arbiter.committee_client import witness_reply_to_chunks
from arbiter.proto import verde_pb2 as pb
from arbiter.status import grpc_errors
from verde.protocol.dispute.committee import CommitteeError, SilenceStatement
from verde.protocol.peers.errors import MalformedMessage
from verde.protocol.peers.messages import Query


class CommitteeCalls:
    """Mixed into the Arbiter servicer; ``seat`` is None for an arbiter without a committee."""

    seat: CommitteeSeat | None

    def _seat(self) -> CommitteeSeat:
        if self.seat is None:
            raise NotACommitteeMember("this arbiter serves no committee (start it with "
                                      "--committee and --bls-key)")
        return self.seat

    @grpc_errors
    def Witness(self, request: pb.WitnessRequest, context: grpc.ServicerContext
                ) -> Iterator[pb.AnswerChunk]:
        seat = self._seat()
        try:
            statement = SilenceStatement.from_json(parse_json(request.statement_json,
                                                              "silence statement"))
            query = Query.from_json(parse_json(request.query_json, "query"))
        except (CommitteeError, MalformedMessage) as exc:
            raise MalformedRequest(str(exc)) from None
        yield from witness_reply_to_chunks(seat.witness(statement, query))

    @grpc_errors
    def CoSign(self, request: pb.CertificateReply, context: grpc.ServicerContext
               ) -> pb.CoSignature:
        seat = self._seat()
        certificate = parse_json(request.certificate_json, "certificate")
        if not isinstance(certificate, dict):
            raise MalformedRequest("the certificate is not a JSON object")
        signature = seat.cosign(certificate)
        me = seat.me
        return pb.CoSignature(public_key=me.public_key, pop=me.pop, signature=signature)
