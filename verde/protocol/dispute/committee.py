"""Committee verdicts: k of n arbiters check a dispute and co-sign its verdict with BLS.

Why: one arbiter's certificate is checkable offline for everything but one thing -- silence.
That a party did not answer by a deadline cannot be proven by a signature of that party, so in
a single-arbiter dispute a timeout is the arbiter's word. With a committee, no single arbiter's
word decides: before a timeout is recorded, at least ``threshold`` members each ask the party
themselves, at the address it vouched for (``verde.protocol.peers.endpoints``), and sign a
*silence statement* only if no valid answer came; the timeout event carries their aggregate
BLS signature (proof-of-possession scheme, ``proofs.bls``). If a member gets a valid answer, it
hands it over and the answer is applied instead. Finally every member replays the finished
dispute from its certificate (every signature, proof, structure check, the one recomputed
operator) and co-signs the certificate; ``verde verify`` accepts it only with ``threshold``
valid co-signatures of members named in the dispute's opening.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proofs import MessageContext, bls, canonical_json
from proofs.certificate import attach_committee, committee_message
from proofs.errors import InvalidSignature, MalformedInput, ProofError, RogueKeyError
from verde.protocol.dispute.errors import DisputeError
from verde.protocol.peers import fields as f
from verde.protocol.peers.errors import MalformedMessage

SILENCE_DOMAIN = b"verde/silence/v1\x00"
#: How far a member's clock may be from the time a silence statement names.
SILENCE_SKEW_S = 120


class CommitteeError(DisputeError):
    """A committee, attestation or co-signature does not verify or does not suffice."""


@dataclass(frozen=True)
class CommitteeMember:
    """One arbiter of a committee: its BLS public key and proof of possession."""

    public_key: bytes
    pop: bytes

    def to_json(self) -> dict[str, str]:
        return {"public_key": self.public_key.hex(), "pop": self.pop.hex()}

    @classmethod
    def from_key(cls, key: bls.BlsSecretKey) -> CommitteeMember:
        return cls(key.public_key, bls.prove_possession(key))


@dataclass(frozen=True)
class Committee:
    """``threshold`` of ``members`` must attest a silence and co-sign a verdict."""

    members: tuple[CommitteeMember, ...]
    threshold: int

    def __post_init__(self) -> None:
        keys = [m.public_key for m in self.members]
        if not keys or len(set(keys)) != len(keys):
            raise CommitteeError("a committee has one or more distinct members")
        if not 1 <= self.threshold <= len(keys):
            raise CommitteeError(f"a committee of {len(keys)} needs a threshold in "
                                 f"[1, {len(keys)}], got {self.threshold}")

    def to_json(self) -> dict[str, Any]:
        return {"members": [m.to_json() for m in self.members], "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: Any) -> Committee:
        try:
            d = f.exact_fields(data, {"members", "threshold"}, "committee")
            members = tuple(
                CommitteeMember(bytes.fromhex(m["public_key"]), bytes.fromhex(m["pop"]))
                for m in f.array(d, "members", "committee")
            )
            return cls(members, f.integer(d, "threshold", "committee", 1))
        except (MalformedMessage, KeyError, TypeError, ValueError) as exc:
            raise CommitteeError(f"malformed committee: {exc}") from None

    def member(self, public_key: bytes) -> CommitteeMember:
        for m in self.members:
            if m.public_key == public_key:
                return m
        raise CommitteeError(f"{public_key.hex()[:16]} is not a member of the committee")

    def check(self, message: bytes, signers: Sequence[bytes], aggregate: bytes) -> None:
        """At least ``threshold`` distinct members signed ``message`` into ``aggregate``."""
        if len(set(signers)) != len(signers):
            raise CommitteeError("an attestation lists a signer twice")
        if len(signers) < self.threshold:
            raise CommitteeError(f"{len(signers)} of the committee signed; {self.threshold} "
                                 "must")
        members = [self.member(pk) for pk in signers]
        try:
            bls.verify_committee([(m.public_key, m.pop) for m in members], message, aggregate)
        except (InvalidSignature, RogueKeyError, MalformedInput) as exc:
            raise CommitteeError(f"the committee's signature does not verify: {exc}") from None


@dataclass(frozen=True)
class SilenceStatement:
    """"Party ``party_key`` did not answer ``context`` at ``address`` by ``observed_at``"."""

    context: MessageContext
    party_key: str
    address: str
    observed_at: int

    def message(self) -> bytes:
        return SILENCE_DOMAIN + canonical_json(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {"context": self.context.to_json(), "party_key": self.party_key,
                "address": self.address, "observed_at": self.observed_at}

    @classmethod
    def from_json(cls, data: Any) -> SilenceStatement:
        try:
            d = f.exact_fields(data, {"context", "party_key", "address", "observed_at"},
                               "silence statement")
            return cls(MessageContext.from_json(d["context"]), f.text(d, "party_key", "silence"),
                       f.text(d, "address", "silence"), f.integer(d, "observed_at", "silence"))
        except (MalformedMessage, ProofError) as exc:
            raise CommitteeError(f"malformed silence statement: {exc}") from None


@dataclass(frozen=True)
class Attestation:
    """A statement and the aggregate BLS signature of the members who signed it."""

    statement: SilenceStatement
    signers: tuple[bytes, ...]
    aggregate: bytes

    def to_json(self) -> dict[str, Any]:
        return {"statement": self.statement.to_json(),
                "signers": [s.hex() for s in self.signers], "aggregate": self.aggregate.hex()}

    @classmethod
    def from_json(cls, data: Any) -> Attestation:
        try:
            d = f.exact_fields(data, {"statement", "signers", "aggregate"}, "attestation")
            return cls(SilenceStatement.from_json(d["statement"]),
                       tuple(bytes.fromhex(s) for s in f.array(d, "signers", "attestation")),
                       bytes.fromhex(d["aggregate"]))
        except (MalformedMessage, TypeError, ValueError) as exc:
            raise CommitteeError(f"malformed attestation: {exc}") from None

    def check(self, committee: Committee, context: MessageContext, party_key: str) -> None:
        """The attestation is about this query to this party, and enough members signed it."""
        if self.statement.context != context or self.statement.party_key != party_key:
            raise CommitteeError("the attestation is about another query or party")
        committee.check(self.statement.message(), self.signers, self.aggregate)


def sign_silence(key: bls.BlsSecretKey, statement: SilenceStatement,
                 now: float | None = None) -> bytes:
    """A member's signature of a silence it observed itself (``observed_at`` near its clock)."""
    now = time.time() if now is None else now
    if abs(now - statement.observed_at) > SILENCE_SKEW_S:
        raise CommitteeError(f"the statement names time {statement.observed_at}, this member's "
                             f"clock says {int(now)}")
    return bls.sign(key, statement.message())


def aggregate(committee: Committee,
              partials: Mapping[bytes, bytes]) -> tuple[tuple[bytes, ...], bytes]:
    """Members' partial signatures (public key -> signature) as (signers, aggregate), checked
    to reach the threshold."""
    signers = tuple(sorted(partials))
    for pk in signers:
        committee.member(pk)
    if len(signers) < committee.threshold:
        raise CommitteeError(f"{len(signers)} of the committee signed; {committee.threshold} "
                             "must")
    return signers, bls.aggregate_signatures([partials[pk] for pk in signers])


def attest_silence(committee: Committee, statement: SilenceStatement,
                   partials: Mapping[bytes, bytes]) -> Attestation:
    """The attestation of a silence from the members' partial signatures."""
    signers, agg = aggregate(committee, partials)
    attestation = Attestation(statement, signers, agg)
    committee.check(statement.message(), signers, agg)
    return attestation


def cosign_certificate(key: bls.BlsSecretKey, certificate: Mapping[str, Any]) -> bytes:
    """A member's co-signature of a verdict certificate it has checked (see
    ``verde.protocol.dispute.verify``: the caller replays the dispute first)."""
    return bls.sign(key, committee_message(certificate))


def attach_cosignatures(certificate: Mapping[str, Any], committee: Committee,
                        partials: Mapping[bytes, bytes]) -> dict[str, Any]:
    """The certificate carrying the aggregate of at least ``threshold`` co-signatures."""
    signers, agg = aggregate(committee, partials)
    members = [committee.member(pk) for pk in signers]
    return attach_committee(certificate, [(m.public_key, m.pop) for m in members], agg)
