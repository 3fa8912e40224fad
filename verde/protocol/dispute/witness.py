"""Committee members as witnesses of silence: each asks the silent party itself.

When a party does not answer the deciding arbiter by the deadline, the arbiter proposes a
:class:`~verde.protocol.dispute.committee.SilenceStatement` (the query, the party's key, the
address it vouched for, the time) and asks the committee. Each member sends the same query to
that address over its own connection: a valid answer signed by the party is handed back and
applied instead of a timeout (the party was reachable after all, only not from the arbiter);
otherwise the member signs the statement. A timeout is recorded only with ``threshold`` such
signatures; with fewer the dispute stalls rather than condemn anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Protocol

from proofs import bls, verify_message
from proofs.errors import ProofError
from verde.protocol.dispute.committee import (
    Attestation,
    Committee,
    CommitteeError,
    SilenceStatement,
    attest_silence,
    sign_silence,
)
from verde.protocol.dispute.errors import DisputeError
from verde.protocol.peers.errors import PeerError
from verde.protocol.peers.messages import Answer, Query
from verde.protocol.peers.protocol import ProviderPeer


class DisputeStalled(DisputeError):
    """Neither an answer nor the committee's attestation of silence could be obtained: the
    dispute waits (nobody loses for what could not be established)."""


class Witness(Protocol):
    """A committee member that can check a silence for itself."""

    @property
    def public_key(self) -> bytes: ...

    def observe(self, statement: SilenceStatement, query: Query) -> Answer | bytes: ...


class PeerWitness:
    """A witness that reaches parties through ``connect(address) -> ProviderPeer`` (in
    process: a table of local peers; over the network: a gRPC client)."""

    def __init__(self, key: bls.BlsSecretKey,
                 connect: Callable[[str], ProviderPeer]) -> None:
        self.key = key
        self.connect = connect
        self._public_key = key.public_key

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def observe(self, statement: SilenceStatement, query: Query) -> Answer | bytes:
        """The party's valid answer to ``query`` at the statement's address, or this member's
        signature of the statement."""
        if query.context != statement.context:
            raise CommitteeError("the statement is about another query than the one to ask")
        try:
            answer = self.connect(statement.address).answer(query)
            verify_message(answer.signed, query.context)
            if answer.signed.signer.hex() == statement.party_key:
                return answer
        except (PeerError, ProofError):
            pass
        return sign_silence(self.key, statement)


def answer_or_attestation(committee: Committee, witnesses: Sequence[Witness],
                          statement: SilenceStatement, query: Query) -> Answer | Attestation:
    """Ask the witnesses, all at once (a silence costs one deadline, not one per member): the
    first answer one of them got, or the committee's attestation."""
    partials: dict[bytes, bytes] = {}
    if not witnesses:
        return _attest(committee, statement, partials)
    pool = ThreadPoolExecutor(max_workers=len(witnesses), thread_name_prefix="witness")
    try:
        pending = {pool.submit(w.observe, statement, query): w for w in witnesses}
        for done in as_completed(pending):
            try:
                seen = done.result()
            except (CommitteeError, PeerError) as exc:
                del exc  # a member that cannot witness is just one signature fewer
                continue
            if isinstance(seen, Answer):
                return seen
            partials[pending[done].public_key] = seen
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return _attest(committee, statement, partials)


def _attest(committee: Committee, statement: SilenceStatement,
            partials: dict[bytes, bytes]) -> Attestation:
    try:
        return attest_silence(committee, statement, partials)
    except CommitteeError as exc:
        raise DisputeStalled(f"party {statement.party_key[:16]} did not answer the arbiter, and "
                             f"the committee could not attest its silence: {exc}") from exc
