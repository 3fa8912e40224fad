"""An arbiter's seat on a committee: the committee file, and what a member does for the others.

Why: under a committee (``verde.protocol.dispute.committee``) no single arbiter's word decides
a timeout, and a verdict counts only with the co-signatures of ``threshold`` members. Every
member runs ``verde arbiter serve --committee FILE --bls-key FILE``; the file names each
member's BLS public key, its proof of possession and the address of its arbiter service, and
the threshold (JSON, or TOML with a ``.toml`` suffix)::

    {"threshold": 2,
     "members": [{"address": "10.0.0.1:7000", "public_key": "<hex>", "pop": "<hex>"}, ...]}

The arbiter that drives a dispute (the leader) asks every member to witness a party's silence
(:class:`arbiter.committee_client.GrpcCommitteeMember`, the gRPC ``Witness`` call) and, once
decided, to co-sign the certificate (``CoSign``); a member checks the certificate itself
(replays the dispute, recomputes the operator) before it signs, and refuses otherwise.
"""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from arbiter.committee_client import GrpcCommitteeMember
from arbiter.errors import ArbiterError, ArbiterInputError
from proofs import bls
from proofs.certificate import committee_message
from proofs.errors import ProofError
from verde.protocol.dispute.committee import (
    Committee,
    CommitteeError,
    CommitteeMember,
    SilenceStatement,
    attach_cosignatures,
    cosign_certificate,
)
from verde.protocol.dispute.errors import DisputeError
from verde.protocol.dispute.verify import check_and_cosign
from verde.protocol.dispute.witness import DisputeStalled, PeerWitness, Witness
from verde.protocol.peers.endpoints import InvalidEndpoint, check_address
from verde.protocol.peers.messages import Answer, Query
from verde.protocol.peers.protocol import ProviderPeer

_MAX_FILE_BYTES = 1 << 20
#: However long a leader asks a member to wait for a party, it waits at most this long.
MAX_WITNESS_DEADLINE_S = 300.0


class CommitteeFileError(ArbiterInputError):
    """The committee file cannot be read or does not describe a committee (exit 3)."""


class CoSignRefused(ArbiterError):
    """This member does not co-sign: the certificate does not check (FAILED_PRECONDITION)."""


class NotACommitteeMember(ArbiterError):
    """This arbiter was started without a committee: it neither witnesses nor co-signs."""


@dataclass(frozen=True)
class CommitteeRoster:
    """A committee and where each member's arbiter service listens."""

    committee: Committee
    addresses: Mapping[bytes, str]

    @classmethod
    def load(cls, path: Path) -> CommitteeRoster:
        """Read and check a committee file (every proof of possession is verified)."""
        try:
            raw = path.read_bytes()[:_MAX_FILE_BYTES + 1]
        except OSError as exc:
            raise CommitteeFileError(f"committee file {path}: {exc.strerror or exc}") from None
        if len(raw) > _MAX_FILE_BYTES:
            raise CommitteeFileError(f"committee file {path} is too large")
        try:
            doc = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommitteeFileError(f"committee file {path} is not valid "
                                     f"{'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}"
                                     ) from None
        try:
            return cls.from_json(doc)
        except CommitteeFileError as exc:
            raise CommitteeFileError(f"committee file {path}: {exc}") from None

    @classmethod
    def from_json(cls, doc: Any) -> CommitteeRoster:
        if not isinstance(doc, dict) or set(doc) != {"threshold", "members"} or \
                not isinstance(doc["members"], list):
            raise CommitteeFileError("needs exactly the fields threshold and members (a list)")
        addresses: dict[bytes, str] = {}
        members = []
        for i, m in enumerate(doc["members"]):
            if not isinstance(m, dict) or set(m) != {"address", "public_key", "pop"}:
                raise CommitteeFileError(f"members[{i}] needs exactly address, public_key, pop")
            try:
                member = CommitteeMember(bytes.fromhex(m["public_key"]), bytes.fromhex(m["pop"]))
                bls.verify_possession(member.public_key, member.pop)
                addresses[member.public_key] = check_address(m["address"])
            except (TypeError, ValueError, ProofError, InvalidEndpoint) as exc:
                raise CommitteeFileError(f"members[{i}]: {exc}") from None
            members.append(member)
        threshold = doc["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise CommitteeFileError(f"threshold must be an integer, got {threshold!r}")
        try:
            committee = Committee(tuple(members), threshold)
        except CommitteeError as exc:
            raise CommitteeFileError(str(exc)) from None
        return cls(committee, addresses)

    def to_json(self) -> dict[str, Any]:
        return {"threshold": self.committee.threshold,
                "members": [{"address": self.addresses[m.public_key], **m.to_json()}
                            for m in self.committee.members]}


@dataclass
class CommitteeSeat:
    """This arbiter as a member of ``roster``: it witnesses, co-signs, and leads disputes."""

    key: bls.BlsSecretKey
    roster: CommitteeRoster
    #: How this arbiter reaches a provider (a gRPC client; closed by the caller).
    connect: Callable[[str], ProviderPeer]
    #: How this arbiter reaches another member (tests may pass TLS through it).
    member_client: Callable[[str, CommitteeMember], GrpcCommitteeMember] = GrpcCommitteeMember
    #: Shortest deadline this member gives a party, whatever the leader asks.
    deadline_s: float = 30.0
    #: Replays share the engine's compute lock (set by the engine).
    compute_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        me = self.key.public_key
        if me not in self.roster.addresses:
            raise CommitteeFileError(f"this arbiter's BLS key {me.hex()[:16]} is not a member "
                                     "of the committee")
        self._others = [self.member_client(self.roster.addresses[m.public_key], m)
                        for m in self.roster.committee.members if m.public_key != me]

    @property
    def committee(self) -> Committee:
        return self.roster.committee

    def close(self) -> None:
        for member in self._others:
            member.close()

    # -- as a member, for a leader -----------------------------------------------------------
    def witness(self, statement: SilenceStatement, query: Query) -> Answer | bytes:
        """Ask the party ourselves: its valid answer, or our signature of its silence."""
        query = replace(query, deadline_s=max(self.deadline_s,
                                              min(query.deadline_s, MAX_WITNESS_DEADLINE_S)))
        peer = self.connect(statement.address)
        try:
            return PeerWitness(self.key, lambda _address: peer).observe(statement, query)
        finally:
            close = getattr(peer, "close", None)
            if close is not None:
                close()

    def sits_on(self, committee: Committee | None) -> bool:
        """Whether ``committee`` is this seat's committee (members in any order)."""
        return committee is not None and committee.threshold == self.committee.threshold \
            and set(committee.members) == set(self.committee.members)

    @property
    def me(self) -> CommitteeMember:
        """This arbiter's entry in the committee (public key and proof of possession)."""
        return self.committee.member(self.key.public_key)

    def cosign(self, certificate: Mapping[str, Any]) -> bytes:
        """Our co-signature of ``certificate``, after checking that our committee ran its
        dispute and that it replays to its verdict; ``CoSignRefused`` otherwise."""
        body = certificate.get("body") if isinstance(certificate, Mapping) else None
        try:
            theirs = Committee.from_json(body["committee"]) if isinstance(body, Mapping) \
                and "committee" in body else None
        except CommitteeError:
            theirs = None
        if theirs is None or not self.sits_on(theirs):
            raise CoSignRefused("this member does not co-sign: the certificate's dispute was not "
                                "run by this member's committee")
        try:
            with self.compute_lock:
                signature = check_and_cosign(self.key, certificate)
        except (DisputeError, ProofError) as exc:
            raise CoSignRefused(f"this member does not co-sign: the certificate does not "
                                f"check: {exc}") from None
        return signature

    # -- as the leader -----------------------------------------------------------------------
    def witnesses(self, connect: Callable[[str], ProviderPeer]) -> list[Witness]:
        """Every member as a witness: ourselves (through ``connect``) and the others."""
        return [PeerWitness(self.key, connect), *self._others]

    def cosigned(self, certificate: dict[str, Any]) -> dict[str, Any]:
        """``certificate`` with the aggregate co-signature of every member that signed (at least
        the threshold; ``DisputeStalled`` if fewer did -- the verdict waits)."""
        message = committee_message(certificate)
        partials = {self.key.public_key: cosign_certificate(self.key, certificate)}
        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=max(1, len(self._others)),
                                thread_name_prefix="cosign") as pool:
            asked = [(m, pool.submit(m.cosign, certificate, message)) for m in self._others]
            for member, future in asked:
                try:
                    partials[member.public_key] = future.result()
                except (ArbiterError, DisputeError, ProofError) as exc:
                    errors.append(f"{member.address}: {exc}")
        if len(partials) < self.committee.threshold:
            raise DisputeStalled(f"{len(partials)} of the committee co-signed the verdict, "
                                 f"{self.committee.threshold} must: {'; '.join(errors)}")
        return attach_cosignatures(certificate, self.committee, partials)
