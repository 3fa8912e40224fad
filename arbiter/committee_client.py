"""Another committee member's arbiter over gRPC: a witness of silences and a co-signer.

:class:`GrpcCommitteeMember` satisfies ``verde.protocol.dispute.witness.Witness``, so the
leader's dispute loop asks a remote member exactly as it asks itself. Every reply is checked
here before it is used: a silence signature must be the member's BLS signature of the very
statement it was asked about, a co-signature the member's signature of the certificate's
committee message -- so one faulty member costs one signature, never a spoiled aggregate.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import grpc

from arbiter.channels import TlsFiles, open_channel
from arbiter.codec import answer_from_chunks, answer_to_chunks, dump_json, query_to_pb
from arbiter.errors import ArbiterError
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.status import remote_error
from proofs import bls
from proofs.errors import ProofError
from verde.protocol.dispute.committee import CommitteeError, CommitteeMember, SilenceStatement
from verde.protocol.peers.errors import PeerError
from verde.protocol.peers.messages import Answer, Query

#: Time a member gets beyond the query's deadline (its own connection, its signature).
WITNESS_SLACK_S = 15.0
#: A member replays the whole dispute and recomputes one operator before it co-signs.
COSIGN_TIMEOUT_S = 300.0
MAX_ANSWER_BYTES = 256 << 20


def witness_reply_to_chunks(seen: Answer | bytes) -> Iterator[pb.AnswerChunk]:
    """A member's reply to ``Witness``: the party's answer, or one chunk with its signature."""
    if isinstance(seen, Answer):
        yield from answer_to_chunks(seen)
    else:
        yield pb.AnswerChunk(silence_signature=seen)


def witness_reply_from_chunks(chunks: Iterable[pb.AnswerChunk]) -> Answer | bytes:
    it = iter(chunks)
    head = next(it, None)
    if head is None:
        raise PeerError("empty witness reply")
    if head.silence_signature:
        return bytes(head.silence_signature)
    return answer_from_chunks(itertools.chain([head], it), MAX_ANSWER_BYTES)


class GrpcCommitteeMember:
    """The arbiter service of committee member ``member`` at ``address``."""

    def __init__(self, address: str, member: CommitteeMember, *,
                 tls: TlsFiles | None = None) -> None:
        self.address = address
        self.member = member
        self.channel = open_channel(address, tls=tls)
        self.stub = rpc.ArbiterStub(self.channel)

    @property
    def public_key(self) -> bytes:
        return self.member.public_key

    def close(self) -> None:
        self.channel.close()

    def observe(self, statement: SilenceStatement, query: Query) -> Answer | bytes:
        """The party's answer as this member got it, or its checked silence signature."""
        what = f"committee member {self.address}: witness"
        request = pb.WitnessRequest(statement_json=dump_json(statement.to_json()),
                                    query_json=query_to_pb(query).query_json)
        try:
            seen = witness_reply_from_chunks(self.stub.Witness(
                request, timeout=query.deadline_s + WITNESS_SLACK_S))
        except grpc.RpcError as err:
            raise PeerError(str(remote_error(what, err))) from None
        if isinstance(seen, bytes):
            try:
                bls.verify_signature(self.public_key, statement.message(), seen)
            except ProofError as exc:
                raise CommitteeError(f"{what}: its silence signature does not verify: "
                                     f"{exc}") from None
        return seen

    def cosign(self, certificate: Mapping[str, Any], message: bytes) -> bytes:
        """This member's co-signature of ``certificate`` (``message`` is its committee
        message), checked; ``ArbiterError`` if the member refuses or answers wrongly."""
        what = f"committee member {self.address}: co-sign"
        try:
            reply = self.stub.CoSign(pb.CertificateReply(
                certificate_json=json.dumps(certificate, sort_keys=True)),
                timeout=COSIGN_TIMEOUT_S)
        except grpc.RpcError as err:
            raise remote_error(what, err) from None
        if bytes(reply.public_key) != self.public_key:
            raise ArbiterError(f"{what}: it signed with another key than the committee names")
        try:
            bls.verify_signature(self.public_key, message, bytes(reply.signature))
        except ProofError as exc:
            raise ArbiterError(f"{what}: its co-signature does not verify: {exc}") from None
        return bytes(reply.signature)
