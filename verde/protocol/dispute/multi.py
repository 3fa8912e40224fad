"""N providers: group them by result and let disputes between groups decide.

With m distinct results, disputes between the groups' representatives eliminate every wrong
result; an honest provider never loses one (Canetti, Riva, Rothblum 2011: correct whenever
one server is honest; Verde, Arun et al. 2025). A provider is condemned only by a dispute it
took part in itself: if a group's representative loses, the next member of that group
defends the same result. So m - 1 disputes decide when representatives defend their groups,
and a provider who copied the honest result and then sabotages a dispute only condemns itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proofs import SignedMessage, SigningKey
from verde.protocol.dispute.driver import DisputeStats, Observer, run_dispute
from verde.protocol.dispute.errors import DisputeError
from verde.protocol.dispute.state import DisputeState
from verde.protocol.dispute.verdict import Verdict
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.protocol import ProviderPeer
from verde.protocol.peers.result import InvalidResult, check_result


@dataclass
class DisputeRecord:
    """One dispute of a resolution: who, the verdict, and what the runner kept of it.

    In-process runs keep the dispute's ``state`` and ``stats``; a dispute settled by a remote
    arbiter service keeps its ``dispute_id`` and the arbiter's certificate instead.
    """

    a: str
    b: str
    verdict: Verdict
    stats: DisputeStats | None = None
    state: DisputeState | None = None
    certificate: dict[str, Any] | None = None
    dispute_id: str = ""


@dataclass
class Resolution:
    """The outcome over all providers."""

    accepted: tuple[str, str] | None
    honest: list[str]
    cheaters: list[str]
    groups: list[list[str]]
    disputes: list[DisputeRecord] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    results: dict[str, SignedMessage] = field(default_factory=dict)
    #: Providers that took the job but gave no result (a network client fills this in): they
    #: cannot be disputed, so they are neither honest nor proven cheaters.
    withheld: list[str] = field(default_factory=list)


#: Runs one dispute between two named providers (a defends its group, b challenges).
DisputeRunner = Callable[[str, str], DisputeRecord]


def settle(
    spec: JobSpec,
    results: Mapping[str, SignedMessage],
    identities: Mapping[str, str],
    run: DisputeRunner,
    *,
    on_dispute: Callable[[str, str], None] | None = None,
) -> Resolution:
    """Group signed results and let ``run`` decide between groups until one is left.

    ``identities`` maps each provider name to the public key (hex) it is known by: a result
    signed by any other key is refused. The same rules apply whether ``run`` drives the
    dispute in this process (:func:`resolve`) or asks an arbiter service.
    """
    lost: set[str] = set()
    reasons: dict[str, str] = {}
    valid: dict[str, SignedMessage] = {}
    groups: dict[tuple[str, str], list[str]] = {}
    for name, signed in results.items():
        try:
            claim = check_result(signed, spec.job_id, spec.steps)
        except InvalidResult as exc:
            lost.add(name)
            reasons[name] = f"invalid result: {exc}"
            continue
        if claim.signer_hex != identities[name]:
            lost.add(name)
            reasons[name] = "result signed by another key than the provider's"
            continue
        valid[name] = signed
        groups.setdefault(claim.key, []).append(name)
    order = list(groups)
    resolution = Resolution(None, [], [], [list(groups[k]) for k in order], results=valid)

    def live(key: tuple[str, str]) -> list[str]:
        return [n for n in groups[key] if n not in lost]

    while True:
        alive = [k for k in order if live(k)]
        if len(alive) <= 1:
            break
        a, b = live(alive[0])[0], live(alive[1])[0]
        if on_dispute is not None:
            on_dispute(a, b)
        record = run(a, b)
        if not record.verdict.losers:
            raise DisputeError(f"dispute between {a} and {b} ended without a loser")
        for party in record.verdict.losers:
            loser = a if party == "a" else b
            lost.add(loser)
            reasons[loser] = f"lost a dispute ({record.verdict.reason})"
        resolution.disputes.append(record)
    alive = [k for k in order if live(k)]
    if alive:
        resolution.accepted = alive[0]
        resolution.honest = live(alive[0])
    resolution.cheaters = sorted(lost, key=list(results).index)
    resolution.reasons = reasons
    return resolution


def resolve(
    spec: JobSpec,
    peers: Mapping[str, ProviderPeer],
    *,
    arbiter_key: SigningKey | None = None,
    retransmit: bool = False,
    observer: Observer | None = None,
    on_dispute: Callable[[str, str], None] | None = None,
    bundle_inputs: bool = True,
) -> Resolution:
    """Collect every provider's result and resolve disagreements by in-process disputes."""
    results = {name: peer.result(spec.job_id) for name, peer in peers.items()}
    identities = {name: peer.identity.hex() for name, peer in peers.items()}
    run_here = local_dispute_runner(spec, results, peers, arbiter_key=arbiter_key,
                                    retransmit=retransmit, observer=observer,
                                    bundle_inputs=bundle_inputs)  # fmt: skip
    return settle(spec, results, identities, run_here, on_dispute=on_dispute)


def local_dispute_runner(
    spec: JobSpec,
    results: Mapping[str, SignedMessage],
    peers: Mapping[str, ProviderPeer],
    *,
    arbiter_key: SigningKey | None = None,
    retransmit: bool = False,
    observer: Observer | None = None,
    bundle_inputs: bool = True,
) -> DisputeRunner:
    """A ``DisputeRunner`` that referees in this process between the named ``peers``.

    With ``arbiter_key`` each dispute also yields a verdict certificate signed by that key.
    """
    from verde.protocol.dispute.certificate import issue_verdict_certificate

    def run_here(a: str, b: str) -> DisputeRecord:
        state = DisputeState(spec, results[a], results[b])
        stats = DisputeStats()
        verdict = run_dispute(state, {"a": peers[a], "b": peers[b]}, retransmit=retransmit,
                              observer=observer, stats=stats)  # fmt: skip
        certificate = (issue_verdict_certificate(state, arbiter_key, bundle_inputs=bundle_inputs)
                       if arbiter_key is not None else None)  # fmt: skip
        return DisputeRecord(a, b, verdict, stats, state, certificate, state.dispute_id)

    return run_here
