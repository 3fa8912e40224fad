"""A provider over gRPC, satisfying :class:`verde.protocol.peers.ProviderPeer`.

The dispute logic in ``verde`` runs unchanged against this class or the in-process
``LocalPeer``. Every call has a deadline; a query's deadline is the protocol deadline, and a
provider silent past it raises ``PeerTimeout`` (it forfeits).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc

from arbiter.caller_auth import signed_channel
from arbiter.channels import DEFAULT_MAX_MESSAGE, TlsFiles, call_with_retry, open_channel
from arbiter.codec import (
    DEFAULT_CHUNK,
    answer_from_chunks,
    dump_json,
    entries_from_chunks,
    query_to_pb,
    signed_from_json,
    state_to_chunks,
)
from arbiter.errors import ArbiterError
from arbiter.proto import verde_pb2 as pb
from arbiter.proto import verde_pb2_grpc as rpc
from arbiter.status import remote_error
from proofs import ProofError, SignedMessage, SigningKey, VerifyKey
from verde.protocol.peers.endpoints import EndpointRecord, InvalidEndpoint
from verde.protocol.peers.errors import PeerError, PeerTimeout, StateRootMismatch
from verde.protocol.peers.messages import Answer, Query, TensorBlob
from verde.protocol.peers.state import StateEntries, blobs_to_state, state_root_hex


class GrpcProviderPeer:
    """Client of one provider's gRPC service (a ``verde.protocol.peers.StateExchangePeer``)."""

    def __init__(self, address: str, *, tls: TlsFiles | None = None,
                 call_timeout_s: float = 30.0, max_tensor_bytes: int = 2 << 30,
                 max_message: int = DEFAULT_MAX_MESSAGE, chunk_size: int = DEFAULT_CHUNK,
                 transfer_timeout_s: float = 300.0,
                 client_key: SigningKey | None = None) -> None:
        """``client_key`` signs every call (``arbiter.request_signing``): a provider started
        with an allow list takes jobs and uploads only from keys on it."""
        self.address = address
        self.name = address
        self.call_timeout_s = call_timeout_s
        self.transfer_timeout_s = transfer_timeout_s
        self.max_tensor_bytes = max_tensor_bytes
        self.chunk_size = chunk_size
        self.bytes_sent = 0
        self.channel = open_channel(address, tls=tls, max_message=max_message)
        self.stub = rpc.ProviderStub(signed_channel(self.channel, client_key))
        self._identity: VerifyKey | None = None
        self.bytes_received = 0
        self.messages = 0

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GrpcProviderPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        return call_with_retry(f"provider {self.address}: {what}", fn)

    @property
    def identity(self) -> VerifyKey:
        if self._identity is None:
            reply = self._call("identity", lambda: self.stub.Identity(
                pb.Empty(), timeout=self.call_timeout_s))
            self._identity = VerifyKey.from_hex(reply.public_key)
        return self._identity

    def endpoint(self, timeout_s: float | None = None) -> EndpointRecord:
        """The endpoint record served here: signature and fields checked, not its signer or
        validity window (the caller checks those against the party it expects)."""
        what = f"provider {self.address}: endpoint record"
        try:
            reply = self.stub.Endpoint(pb.Empty(), timeout=timeout_s or self.call_timeout_s)
        except grpc.RpcError as err:
            raise PeerError(str(remote_error(what, err))) from None
        try:
            doc = json.loads(reply.message_json)
        except ValueError:
            raise InvalidEndpoint(f"{what}: not JSON") from None
        return EndpointRecord.from_json(doc)

    def challenge(self, nonce: str, address: str, timeout_s: float | None = None
                  ) -> SignedMessage:
        """The signed answer of whoever answers here to ``nonce`` for ``address`` (unchecked:
        see ``verde.protocol.peers.endpoints.check_challenge``)."""
        what = f"provider {self.address}: challenge"
        try:
            reply = self.stub.Challenge(pb.ChallengeRequest(nonce=nonce, address=address),
                                        timeout=timeout_s or self.call_timeout_s)
        except grpc.RpcError as err:
            mapped = remote_error(what, err)
            if getattr(mapped, "unreachable", False) or isinstance(mapped, PeerError):
                raise PeerError(str(mapped)) from None  # nobody answered
            # Someone answered, but would not or could not sign for this address.
            raise InvalidEndpoint(str(mapped)) from None
        try:
            return SignedMessage.from_json(json.loads(reply.message_json))
        except (ProofError, TypeError, ValueError) as exc:
            raise InvalidEndpoint(f"{what}: not a signed message: {exc}") from None

    def submit(self, spec: Mapping[str, Any]) -> str:
        reply = self._call("submit", lambda: self.stub.SubmitJob(
            pb.JobRequest(spec_json=dump_json(dict(spec))),
            timeout=self.call_timeout_s))
        return str(reply.job_id)

    def status(self, job_id: str) -> pb.JobStatus:
        return self._call("status", lambda: self.stub.GetStatus(
            pb.JobRef(job_id=job_id), timeout=self.call_timeout_s))

    def wait(self, job_id: str, *, timeout_s: float = 3600.0, poll_s: float = 0.2,
             progress: Callable[[int, int], None] | None = None) -> None:
        """Block until the job is done (raise if it failed or the timeout passed)."""
        end = time.monotonic() + timeout_s
        while True:
            st = self.status(job_id)
            if progress is not None:
                progress(int(st.steps_done), int(st.steps_total))
            if st.state == "done":
                return
            if st.state == "failed":
                raise ArbiterError(f"provider {self.address}: job {job_id} failed: {st.error}")
            if time.monotonic() > end:
                raise ArbiterError(f"provider {self.address}: job {job_id} not done after "
                                   f"{timeout_s:g}s (state {st.state})")
            time.sleep(poll_s)

    def result(self, job_id: str) -> SignedMessage:
        reply = self._call("result", lambda: self.stub.GetResult(
            pb.JobRef(job_id=job_id), timeout=self.call_timeout_s))
        return signed_from_json(reply.message_json)

    def answer(self, query: Query) -> Answer:
        """The provider's answer within the query's deadline, or a ``PeerError``.

        Transient unavailability is retried until the deadline; anything else — an error
        status, an oversized or malformed stream — is the provider failing to answer, which
        the dispute treats like a missed deadline.
        """
        self.messages += 1
        what = f"provider {self.address}: answer {query.kind} (round {query.round})"
        end = time.monotonic() + query.deadline_s
        delay = 0.1
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise PeerTimeout(f"{what}: no answer before the deadline")
            try:
                stream = self.stub.Answer(query_to_pb(query), timeout=left)
                answer = answer_from_chunks(stream, self.max_tensor_bytes)
                break
            except grpc.RpcError as err:
                if err.code() is grpc.StatusCode.UNAVAILABLE and left > delay:
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                mapped = remote_error(what, err)
                if isinstance(mapped, PeerError):
                    raise mapped from None
                raise PeerError(str(mapped)) from None
        self.bytes_received += answer.size()
        return answer

    def put_state(self, state: Mapping[str, TensorBlob]) -> str:
        """Upload a state (streamed in chunks); returns its root, checked against our own."""
        expected = state_root_hex(blobs_to_state(state))
        reply = self._call("put state", lambda: self.stub.PutState(
            state_to_chunks(state, self.chunk_size), timeout=self.transfer_timeout_s))
        self.messages += 1
        self.bytes_sent += sum(len(name) + len(b.data) + 64 for name, b in state.items())
        if reply.root != expected:
            raise StateRootMismatch(f"provider {self.address} stored the uploaded state as "
                                    f"{reply.root[:64]!r}, its root is {expected}")
        return expected

    def fetch_state(self, job_id: str, names: Sequence[str]) -> StateEntries:
        """Entries of a finished job's final state (verify them with ``verify_state_entries``)."""
        request = pb.FetchStateRequest(job_id=job_id, names=list(names))
        entries: StateEntries = self._call("fetch state", lambda: entries_from_chunks(
            self.stub.FetchState(request, timeout=self.transfer_timeout_s),
            self.max_tensor_bytes))
        self.messages += 1
        self.bytes_received += entries.size()
        return entries
