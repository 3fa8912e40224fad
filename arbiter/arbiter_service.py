"""gRPC Arbiter service: convert the request, call the engine or the store, convert the reply."""

from __future__ import annotations

import grpc

from arbiter.caller_auth import caller_name
from arbiter.codec import parse_json
from arbiter.committee_service import CommitteeCalls
from arbiter.dispute_admission import DisputeAdmission
from arbiter.engine import ArbiterEngine
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.status import grpc_errors
from arbiter.storage.store import DisputeRecord

MAX_LIST = 1000


def _status(rec: DisputeRecord) -> pb.DisputeStatus:
    return pb.DisputeStatus(dispute_id=rec.dispute_id, job_id=rec.job_id, status=rec.status,
                            phase=rec.phase, rounds=rec.rounds,
                            verdict_json=rec.verdict_json or "", error=rec.error or "")


class ArbiterServicer(CommitteeCalls, rpc.ArbiterServicer):
    def __init__(self, engine: ArbiterEngine, admission: DisputeAdmission | None = None
                 ) -> None:
        self.engine = engine
        self.seat = engine.committee
        #: Budget, store bound and per-client quotas checked before a dispute is opened.
        self.admission = admission or DisputeAdmission(engine)

    @grpc_errors
    def Identity(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.IdentityReply:
        return pb.IdentityReply(public_key=self.engine.key.public_key.hex())

    @grpc_errors
    def OpenDispute(self, request: pb.OpenDisputeRequest, context: grpc.ServicerContext
                    ) -> pb.DisputeRef:
        spec = parse_json(request.spec_json, "job spec")
        entries = [(p.address, p.signed_result_json, p.endpoint_json)
                   for p in request.providers]
        opened = self.admission.open(spec, entries, caller_name())
        return pb.DisputeRef(dispute_id=opened.dispute_id)

    @grpc_errors
    def GetDispute(self, request: pb.DisputeRef, context: grpc.ServicerContext
                   ) -> pb.DisputeStatus:
        return _status(self.engine.store.dispute(request.dispute_id))

    @grpc_errors
    def GetCertificate(self, request: pb.DisputeRef, context: grpc.ServicerContext
                       ) -> pb.CertificateReply:
        rec = self.engine.store.dispute(request.dispute_id)
        if not rec.certificate_json:
            from arbiter.errors import NotFound

            raise NotFound(f"dispute {rec.dispute_id} has no certificate yet "
                           f"(status {rec.status})")
        return pb.CertificateReply(certificate_json=rec.certificate_json)

    @grpc_errors
    def ListDisputes(self, request: pb.ListRequest, context: grpc.ServicerContext
                     ) -> pb.DisputeList:
        limit = min(request.limit or 100, MAX_LIST)
        recs = self.engine.store.list_disputes(request.status or None, limit)
        return pb.DisputeList(disputes=[_status(r) for r in recs])
