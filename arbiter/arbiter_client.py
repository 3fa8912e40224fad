"""Client of an arbiter's gRPC service (used by ``verde delegate`` and ``verde disputes``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from arbiter.caller_auth import signed_channel
from arbiter.channels import TlsFiles, call_with_retry, open_channel
from arbiter.codec import dump_json
from arbiter.errors import ArbiterError
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from proofs import SigningKey

#: A dispute in one of these stays there (``unreachable`` until someone opens it again).
FINAL_STATUSES = ("decided", "failed", "unreachable")


class ArbiterClient:
    def __init__(self, address: str, *, tls: TlsFiles | None = None,
                 call_timeout_s: float = 30.0, client_key: SigningKey | None = None) -> None:
        """``client_key`` signs every call (``arbiter.request_signing``): an arbiter started
        with an allow list opens disputes only for keys on it."""
        self.address = address
        self.call_timeout_s = call_timeout_s
        self.channel = open_channel(address, tls=tls)
        self.stub = rpc.ArbiterStub(signed_channel(self.channel, client_key))

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> ArbiterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        return call_with_retry(f"arbiter {self.address}: {what}", fn)

    def open_dispute(self, spec: Mapping[str, Any],
                     entries: Sequence[tuple[str, ...]]) -> str:
        """Open (or re-open) a dispute; each entry is (address hint, signed result JSON[,
        the provider's signed endpoint record JSON])."""
        req = pb.OpenDisputeRequest(
            spec_json=dump_json(dict(spec)),
            providers=[pb.ProviderEntry(address=e[0], signed_result_json=e[1],
                                        endpoint_json=e[2] if len(e) > 2 else "")
                       for e in entries])
        return str(self._call("open dispute", lambda: self.stub.OpenDispute(
            req, timeout=self.call_timeout_s)).dispute_id)

    def status(self, dispute_id: str) -> pb.DisputeStatus:
        return self._call("dispute status", lambda: self.stub.GetDispute(
            pb.DisputeRef(dispute_id=dispute_id), timeout=self.call_timeout_s))

    def certificate(self, dispute_id: str) -> dict[str, Any]:
        reply = self._call("certificate", lambda: self.stub.GetCertificate(
            pb.DisputeRef(dispute_id=dispute_id), timeout=self.call_timeout_s))
        return dict(json.loads(reply.certificate_json))

    def list(self, status: str = "", limit: int = 100) -> list[pb.DisputeStatus]:
        reply = self._call("list", lambda: self.stub.ListDisputes(
            pb.ListRequest(status=status, limit=limit), timeout=self.call_timeout_s))
        return list(reply.disputes)

    def wait(self, dispute_id: str, *, timeout_s: float = 600.0, poll_s: float = 0.2,
             progress: Callable[[pb.DisputeStatus], None] | None = None) -> pb.DisputeStatus:
        end = time.monotonic() + timeout_s
        while True:
            st = self.status(dispute_id)
            if progress is not None:
                progress(st)
            if st.status in FINAL_STATUSES:
                return st
            if time.monotonic() > end:
                raise ArbiterError(f"arbiter {self.address}: dispute {dispute_id} not decided "
                                   f"after {timeout_s:g}s (phase {st.phase})")
            time.sleep(poll_s)
