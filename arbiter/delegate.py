"""``verde delegate`` over the network: send a job to N providers, settle disagreements.

Providers are grouped by the result they signed (final state digest and step-digest root).
With m distinct results, m-1 disputes decide (Verde, Arun et al. 2025; Canetti, Riva,
Rothblum 2011): the current champion group's representative disputes the next group's; the
winner stays champion; if both lose, the next group becomes champion. An honest provider never
loses a dispute, so whenever one is honest the final champion is the honest result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from arbiter.arbiter_client import ArbiterClient
from arbiter.errors import ArbiterError
from arbiter.provider_client import GrpcProviderPeer
from proofs import SignedMessage
from verde.jobs.spec import JobSpec
from verde.provider.result import check_result

Report = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass
class DisputeOutcome:
    dispute_id: str
    between: tuple[str, str]
    winner: str | None
    verdict: dict[str, Any]
    certificate: dict[str, Any] | None


@dataclass
class DelegationResult:
    job_id: str
    result: SignedMessage | None
    honest: list[str]
    dishonest: list[str]
    disputes: list[DisputeOutcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id,
                "result": self.result.to_json() if self.result else None,
                "honest_providers": self.honest, "dishonest_providers": self.dishonest,
                "disputes": [{"dispute_id": d.dispute_id, "between": list(d.between),
                              "winner": d.winner, "verdict": d.verdict} for d in self.disputes]}


def _round_printer(say: Report) -> Callable[[Any], None]:
    """Print each (phase, round) of a dispute once, however often it is polled."""
    seen: set[tuple[str, int]] = set()

    def show(st: Any) -> None:
        if (st.phase, st.rounds) not in seen:
            seen.add((st.phase, st.rounds))
            say(f"  round {st.rounds}: {st.phase}")

    return show


def delegate(spec: JobSpec, providers: Sequence[str], arbiter: ArbiterClient | None, *,
             peer_factory: Callable[[str], GrpcProviderPeer] = GrpcProviderPeer,
             report: Report | None = None, progress: Progress | None = None,
             job_timeout_s: float = 3600.0, dispute_timeout_s: float = 1800.0
             ) -> DelegationResult:
    """Run ``spec`` on every provider and return the result that survives the disputes."""
    if len(set(providers)) != len(providers) or not providers:
        raise ValueError("give one or more distinct provider addresses")
    say = report or (lambda _msg: None)
    peers = {addr: peer_factory(addr) for addr in providers}
    try:
        signed: dict[str, SignedMessage] = {}
        for addr, peer in peers.items():
            job_id = peer.submit(spec.to_dict())
            if job_id != spec.job_id:
                raise ArbiterError(f"provider {addr} computed job id {job_id}, expected "
                                   f"{spec.job_id}: it runs an incompatible verde version")
        for addr, peer in peers.items():
            peer.wait(spec.job_id, timeout_s=job_timeout_s,
                      progress=(lambda d, t, a=addr: progress(a, d, t)) if progress else None)
            signed[addr] = peer.result(spec.job_id)
    finally:
        for peer in peers.values():
            peer.close()
    groups: dict[tuple[str, str], list[str]] = {}
    invalid: list[str] = []
    for addr, message in signed.items():
        try:
            claim = check_result(message, spec.job_id, spec.steps)
        except Exception as exc:  # an invalid signed result is a dishonest provider
            say(f"provider {addr}: invalid result ({exc})")
            invalid.append(addr)
            continue
        groups.setdefault(claim.key, []).append(addr)
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0]))
    say(f"{len(signed)} results, {len(ordered)} distinct")
    out = DelegationResult(spec.job_id, None, [], list(invalid))
    if not ordered:
        return out
    champion: list[str] | None = ordered[0]
    for challenger in ordered[1:]:
        if champion is None:
            champion = challenger
            continue
        if arbiter is None:
            raise ArbiterError("providers disagree and no arbiter was given (--arbiter)")
        a, b = champion[0], challenger[0]
        say(f"dispute: {a} vs {b}")
        did = arbiter.open_dispute(spec.to_dict(), [
            (a, json.dumps(signed[a].to_json(), sort_keys=True)),
            (b, json.dumps(signed[b].to_json(), sort_keys=True))])
        status = arbiter.wait(did, timeout_s=dispute_timeout_s, progress=_round_printer(say))
        if status.status != "decided":
            raise ArbiterError(f"dispute {did} ended {status.status}: {status.error}")
        verdict = json.loads(status.verdict_json)
        try:
            certificate = arbiter.certificate(did)
        except Exception:
            certificate = None
        winner = {"a": a, "b": b}.get(verdict["winner"])
        out.disputes.append(DisputeOutcome(did, (a, b), winner, verdict, certificate))
        say(f"  verdict: {winner or 'both lost'} ({verdict['reason']})")
        losers = [g for g, side in ((champion, "a"), (challenger, "b"))
                  if side in verdict["losers"]]
        for g in losers:
            out.dishonest.extend(g)
        champion = challenger if winner == b else (champion if winner == a else None)
    if champion is not None:
        out.honest = list(champion)
        out.result = signed[champion[0]]
    return out
