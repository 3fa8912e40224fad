"""``verde delegate`` over the network: send a job to N providers, settle disagreements.

The grouping of results and the order of disputes are verde's own
(:func:`verde.protocol.dispute.multi.settle`): this module only gathers the signed results over gRPC
and runs each dispute through an arbiter service instead of in this process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from arbiter.arbiter_client import ArbiterClient
from arbiter.codec import dump_json
from arbiter.errors import ArbiterError, ArbiterInputError
from arbiter.provider_client import GrpcProviderPeer
from proofs import SignedMessage
from verde.protocol.dispute.multi import DisputeRecord, DisputeRunner, Resolution, settle
from verde.protocol.dispute.verdict import Verdict
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.errors import PeerError

Report = Callable[[str], None]
Progress = Callable[[str, int, int], None]
#: (dispute id, short label, phase, rounds) each time a dispute is polled.
Rounds = Callable[[str, str, str, int], None]
#: (dispute id, outcome in a few words) when a dispute ends.
Verdicts = Callable[[str, str], None]


def _round_printer(say: Report) -> Rounds:
    """Print each (phase, round) of a dispute once, however often it is polled."""
    seen: set[tuple[str, str, int]] = set()

    def show(dispute_id: str, _label: str, phase: str, rounds: int) -> None:
        if (dispute_id, phase, rounds) not in seen:
            seen.add((dispute_id, phase, rounds))
            say(f"  round {rounds}: {phase}")

    return show


def resolution_json(spec: JobSpec, res: Resolution) -> dict[str, Any]:
    accepted = res.results[res.honest[0]].to_json() if res.honest else None
    return {"job_id": spec.job_id, "result": accepted, "honest_providers": res.honest,
            "dishonest_providers": res.cheaters, "withheld_providers": res.withheld,
            "reasons": res.reasons,
            "disputes": [{"dispute_id": d.dispute_id, "between": [d.a, d.b],
                          "winner": {"a": d.a, "b": d.b}.get(d.verdict.winner or ""),
                          "verdict": {**d.verdict.to_json(),
                                      "keys": {"a": res.results[d.a].signer.hex(),
                                               "b": res.results[d.b].signer.hex()}}}
                         for d in res.disputes]}


def collect_results(spec: JobSpec, peers: dict[str, GrpcProviderPeer], *,
                    progress: Progress | None, timeout_s: float
                    ) -> tuple[dict[str, SignedMessage], dict[str, str], dict[str, str]]:
    """Submit the job everywhere, wait for every provider; return results, identities, and
    why each provider that took the job gave no result (withholding it must not stop the
    client from getting the honest providers' result)."""
    for addr, peer in peers.items():
        job_id = peer.submit(spec.to_dict())
        if job_id != spec.job_id:
            raise ArbiterError(f"provider {addr} computed job id {job_id}, expected "
                               f"{spec.job_id}: it runs an incompatible verde version")
    def finish(addr: str) -> tuple[SignedMessage, str] | str:
        peer = peers[addr]
        try:
            peer.wait(spec.job_id, timeout_s=timeout_s,
                      progress=(lambda d, t: progress(addr, d, t)) if progress else None)
            return peer.result(spec.job_id), peer.identity.hex()
        except (ArbiterError, PeerError) as exc:
            return f"withheld its result: {exc}"

    # Every provider trains at once; wait for them side by side so progress moves for all.
    with ThreadPoolExecutor(max_workers=len(peers), thread_name_prefix="wait") as pool:
        done = dict(zip(peers, pool.map(finish, peers), strict=True))
    got = {a: d for a, d in done.items() if not isinstance(d, str)}
    withheld = {a: d for a, d in done.items() if isinstance(d, str)}
    if not got:
        raise ArbiterError("no provider returned a result: "
                           + "; ".join(f"{a} {why}" for a, why in withheld.items()))
    return ({a: r for a, (r, _) in got.items()}, {a: k for a, (_, k) in got.items()},
            withheld)


def collect_endpoints(peers: Mapping[str, GrpcProviderPeer],
                      results: Mapping[str, SignedMessage]) -> dict[str, str]:
    """Each provider's signed endpoint record (JSON), where it serves a valid one for the key
    that signed its result; the arbiter reaches a party only where such a record says."""
    records = {}
    for addr, peer in peers.items():
        try:
            record = peer.endpoint().check(results[addr].signer)
        except PeerError:  # none, or not this party's: the arbiter fetches from the hint
            continue
        records[addr] = dump_json(record.to_json())
    return records


def delegate(spec: JobSpec, providers: Sequence[str], arbiter: ArbiterClient | None, *,
             peer_factory: Callable[[str], GrpcProviderPeer] = GrpcProviderPeer,
             report: Report | None = None, progress: Progress | None = None,
             rounds: Rounds | None = None, verdicts: Verdicts | None = None,
             job_timeout_s: float = 3600.0, dispute_timeout_s: float = 1800.0) -> Resolution:
    """Run ``spec`` on every provider and return the resolution of their results.

    ``report`` gets narrative lines, ``progress`` each provider's steps, ``rounds`` and
    ``verdicts`` each dispute's rounds and outcome (default: lines through ``report``).
    """
    if len(set(providers)) != len(providers) or not providers:
        raise ArbiterInputError("give one or more distinct provider addresses")
    say = report or (lambda _msg: None)
    peers = {addr: peer_factory(addr) for addr in providers}
    try:
        results, identities, withheld = collect_results(spec, peers, progress=progress,
                                                        timeout_s=job_timeout_s)
        endpoints = collect_endpoints({a: peers[a] for a in results}, results)
    finally:
        for peer in peers.values():
            peer.close()
    distinct = {dump_json(r.payload) for r in results.values()}
    say(f"{len(results)} results, {len(distinct)} distinct"
        + (f", {len(withheld)} withheld" if withheld else ""))

    def no_arbiter(a: str, b: str) -> DisputeRecord:
        raise ArbiterError("providers disagree and no arbiter was given (--arbiter)")

    run = (arbiter_dispute_runner(spec, results, arbiter, report=say, rounds=rounds,
                                  verdicts=verdicts, timeout_s=dispute_timeout_s,
                                  endpoints=endpoints)
           if arbiter is not None else no_arbiter)  # fmt: skip
    resolution = settle(spec, results, identities, run)
    resolution.withheld = list(withheld)
    resolution.reasons.update(withheld)
    return resolution


def arbiter_dispute_runner(spec: JobSpec, results: Mapping[str, SignedMessage],
                           arbiter: ArbiterClient, *, report: Report | None = None,
                           rounds: Rounds | None = None, verdicts: Verdicts | None = None,
                           timeout_s: float = 1800.0,
                           endpoints: Mapping[str, str] | None = None) -> DisputeRunner:
    """A ``DisputeRunner`` that has an arbiter service referee each dispute.

    The parties are named by their provider addresses and, where known, their signed endpoint
    records (``endpoints``): the arbiter dials them itself, so it never has to trust the
    client's copy of the answers. Opening the dispute again (as a client does after someone
    else opened it first) adds our records to it.
    """
    records = dict(endpoints or {})
    say = report or (lambda _msg: None)
    show_round = rounds or _round_printer(say)

    def run(a: str, b: str) -> DisputeRecord:
        say(f"dispute: {a} vs {b}")
        did = arbiter.open_dispute(spec.to_dict(), [
            (a, dump_json(results[a].to_json()), records.get(a, "")),
            (b, dump_json(results[b].to_json()), records.get(b, ""))])
        label = did[:12]
        status = arbiter.wait(did, timeout_s=timeout_s, progress=lambda st: show_round(
            did, label, st.phase, int(st.rounds)))
        if status.status != "decided":
            raise ArbiterError(f"dispute {did} ended {status.status}: {status.error}")
        doc = json.loads(status.verdict_json)
        doc.pop("keys", None)
        verdict = Verdict.from_json(doc)
        certificate = arbiter.certificate(did)
        summary = (f"verdict: {({'a': a, 'b': b}).get(verdict.winner or '', 'both lost')} "
                   f"({verdict.reason})")
        if verdicts is not None:
            verdicts(did, f"{label} decided")
        say(f"  {summary}")
        return DisputeRecord(a, b, verdict, certificate=certificate, dispute_id=did)

    return run
