"""Cheat strategies against verde, and a fuzz run against real services; prints ONE JSON line.

Three parts, each with the honest outcome checked (issue 15, "Disputes nobody can game"):

* ``protocol``: every fault of ``verde.protocol.faults`` (corrupted computation, lying,
  equivocating or withheld dispute answers, forged graphs...), seeded: try ``i`` runs fault
  ``i mod 17`` with seed ``i`` on a random side, until N disputes ran, in this process
  (``run_dispute`` with ``LocalPeer``, every query delivered twice). The honest provider must
  win every dispute.
* ``services``: strategies against real ``verde provider serve`` / ``verde arbiter serve``
  processes on 127.0.0.1 -- the wire-level hostile providers of ``tests/e2e/hostile.py`` and
  the identity and network strategies (framing with a made-up address, front-running the
  client, a hijacked address, relayed records, replayed challenge answers, foreign / expired /
  forged endpoint records, forged results, re-open spam, a withheld result). The honest side
  must never lose; where a dispute cannot be decided it must end ``unreachable`` or be refused.
  ``honest_wins`` counts the disputes whose outcome was the honest one: decided for the
  honest provider, or (hijacked address, replayed challenge) ended ``unreachable`` with no
  loss recorded; ``service_outcomes`` counts the strategies by which of those (or a refusal
  at open) they ended with.
* ``fuzz``: N seeded mutations of real requests (``bench/_fuzz_messages.py``) sent as raw bytes
  to the provider and the arbiter: zero INTERNAL/UNKNOWN statuses, both processes alive, and
  their resident memory before and after.

Run: ``.venv/bin/python bench/adversarial_bench.py`` (small) or ``--long`` (500 seeded
disputes, 100,000 fuzzed messages); ``--disputes N`` / ``--fuzz N`` set either directly.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.e2e.hostile

DEAD = "127.0.0.1:1"  # nothing listens there
CHEAT_STEP = 3


def spec_for(seed: int, steps: int = 6) -> dict[str, Any]:
    return {"program": "mlp", "dataset": {"name": "digits"},
            "optimizer": {"name": "sgd", "lr": 0.1}, "steps": steps, "batch_size": 8,
            "seed": seed}


# -- protocol faults, in process ----------------------------------------------------------------

def protocol_strategies() -> list[str]:
    from verde.protocol.faults import ANSWER_FAULTS, COMPUTE_FAULTS

    return [f"compute:{c}" for c in COMPUTE_FAULTS] + [f"answer:{a}" for a in ANSWER_FAULTS]


def protocol_campaign(n: int, seed: int) -> dict[str, Any]:
    """``n`` seeded disputes over the fault catalogue (a fault that leaves the result as the
    honest one is counted apart and does not count as a dispute); wins and no-effect faults."""
    from proofs import SigningKey
    from verde.protocol.dispute.driver import run_dispute
    from verde.protocol.dispute.errors import NoDisputeError
    from verde.protocol.dispute.state import DisputeState
    from verde.protocol.faults import CheatingProvider, FaultPlan
    from verde.protocol.jobs.spec import JobSpec
    from verde.protocol.peers.local import LocalPeer
    from verde.protocol.provider.provider import Provider

    names = protocol_strategies()
    spec = JobSpec.from_mapping(spec_for(seed, steps=6))
    honest = Provider(SigningKey.from_seed(b"adv-honest".ljust(32, b"\0")))
    honest.submit(spec)
    rng = random.Random(seed)
    out = {"disputes": 0, "honest_wins": 0, "no_effect": 0, "losses": []}
    i = -1
    while out["disputes"] < n and i < 3 * n:
        i += 1
        kind, fault = names[i % len(names)].split(":")
        plan = (FaultPlan(compute=fault, seed=seed * 100_003 + i) if kind == "compute" else
                FaultPlan(compute="corrupt_op", answer=fault, seed=seed * 100_003 + i))
        cheater = CheatingProvider(SigningKey.from_seed(f"adv-cheat-{i % 8}".encode()
                                                        .ljust(32, b"\0")), plan=plan)
        cheater.submit(spec)
        side = rng.choice("ab")
        pair = (honest, cheater) if side == "a" else (cheater, honest)
        peers = {"a": LocalPeer(pair[0]), "b": LocalPeer(pair[1])}
        try:
            state = DisputeState(spec, peers["a"].result(spec.job_id),
                                 peers["b"].result(spec.job_id))
        except NoDisputeError:  # the fault did not change the result: nothing to win
            out["no_effect"] += 1
            continue
        verdict = run_dispute(state, peers, retransmit=True)
        out["disputes"] += 1
        if verdict.winner == side:
            out["honest_wins"] += 1
        else:
            out["losses"].append({"fault": names[i % len(names)], "seed": i,
                                  "verdict": verdict.to_json()})
    return out


# -- strategies against the services --------------------------------------------------------

class World:
    """The processes, a client and helpers the service strategies share."""

    def __init__(self, workdir: Path, deadline_s: int) -> None:
        from service_bench import Services, key_file

        from arbiter.arbiter_client import ArbiterClient

        self.workdir = workdir
        self.keys = {n: key_file(workdir, n) for n in ("honest", "cheat", "victim", "arb")}
        self.services = Services(workdir)
        prov = ["provider", "serve", "--listen", "127.0.0.1:0", "--key"]
        self.honest = self.services.start("honest", [*prov, str(self.keys["honest"])])
        self.cheat = self.services.start("cheat", [*prov, str(self.keys["cheat"]), "--fault",
                                                   f"compute=corrupt_op,step={CHEAT_STEP}"])
        self.victim = self.services.start("victim", [*prov, str(self.keys["victim"]),
                                                     "--advertise", self.cheat])
        self.db = workdir / "arb.db"
        self.arbiter = self.services.start("arb", [
            "arbiter", "serve", "--key", str(self.keys["arb"]), "--listen", "127.0.0.1:0",
            "--db", f"sqlite:///{self.db}", "--workers", "8", "--deadline", str(deadline_s),
            "--lease", "60"])
        self.client = ArbiterClient(self.arbiter)
        self.servers: list[Any] = []

    def close(self) -> None:
        self.client.close()
        for server in self.servers:
            server.stop(0)
        self.services.close()

    def key(self, name: str) -> Any:
        from proofs import SigningKey

        return SigningKey.load(self.keys[name])

    def result(self, address: str, spec: dict[str, Any]) -> str:
        from arbiter.provider_client import GrpcProviderPeer

        with GrpcProviderPeer(address) as peer:
            job = peer.submit(spec)
            peer.wait(job, timeout_s=600)
            return json.dumps(peer.result(job).to_json(), sort_keys=True)

    def record(self, address: str) -> str:
        from arbiter.provider_client import GrpcProviderPeer

        with GrpcProviderPeer(address) as peer:
            return json.dumps(peer.endpoint().to_json(), sort_keys=True)

    def lost(self, name: str) -> int:
        import sqlite3

        with sqlite3.connect(self.db) as conn:
            row = conn.execute("SELECT disputes_lost FROM providers WHERE public_key = ?",
                               (self.key(name).public_key.hex(),)).fetchone()
        return int(row[0]) if row else 0

    def wait(self, did: str) -> Any:
        return self.client.wait(did, timeout_s=900, poll_s=0.2)

    def winner_key(self, did: str) -> str | None:
        st = self.wait(did)
        if st.status != "decided":
            return None
        doc = json.loads(st.verdict_json)
        return doc["keys"].get(doc["winner"] or "")

    def serve(self, servicer: Any) -> str:
        from tests.e2e.hostile import serve_servicer

        server, address = serve_servicer(servicer)
        self.servers.append(server)
        return address


Outcome = dict[str, Any]


def _refused(call: Callable[[], Any]) -> str | None:
    try:
        call()
    except Exception as exc:  # the refusal is the expected outcome
        return str(getattr(exc, "code", type(exc).__name__))
    return None


def framing(w: World, seed: int) -> Outcome:
    spec = spec_for(seed)
    rh, rc = w.result(w.honest, spec), w.result(w.cheat, spec)
    did = w.client.open_dispute(spec, [(w.cheat, rc), (DEAD, rh)])
    first = w.wait(did).status
    again = w.client.open_dispute(spec, [(w.cheat, rc, w.record(w.cheat)),
                                         (w.honest, rh, w.record(w.honest))])
    ok = (first == "unreachable" and again == did
          and w.winner_key(did) == w.key("honest").public_key.hex())
    return {"ok": ok, "framed_dispute": first, "disputes": 1}


def front_running(w: World, seed: int) -> Outcome:
    spec = spec_for(seed)
    rh, rc = w.result(w.honest, spec), w.result(w.cheat, spec)
    did = w.client.open_dispute(spec, [(w.cheat, rc), (DEAD, rh)])  # the cheater, first
    mine = w.client.open_dispute(spec, [(w.cheat, rc, w.record(w.cheat)),
                                        (w.honest, rh, w.record(w.honest))])
    return {"ok": mine == did and w.winner_key(did) == w.key("honest").public_key.hex(),
            "disputes": 1}


def address_hijack(w: World, seed: int) -> Outcome:
    spec = spec_for(seed)
    rv, rc = w.result(w.victim, spec), w.result(w.cheat, spec)
    did = w.client.open_dispute(spec, [(w.victim, rv, w.record(w.victim)),
                                       (w.cheat, rc, w.record(w.cheat))])
    st = w.wait(did)
    return {"ok": st.status == "unreachable" and w.lost("victim") == 0, "status": st.status,
            "disputes": 1}


def relayed_record(w: World, seed: int) -> Outcome:
    """The cheater names its own server as the honest party's address; it serves the honest
    party's genuine record, which points the arbiter to the honest provider itself."""
    from arbiter.provider_client import GrpcProviderPeer
    from tests.e2e.hostile import EndpointImpostor

    with GrpcProviderPeer(w.honest) as peer:
        genuine = peer.endpoint()
    relay = w.serve(EndpointImpostor(genuine))
    spec = spec_for(seed)
    rh, rc = w.result(w.honest, spec), w.result(w.cheat, spec)
    did = w.client.open_dispute(spec, [(w.cheat, rc), (relay, rh)])
    return {"ok": w.winner_key(did) == w.key("honest").public_key.hex(), "disputes": 1}


def replayed_challenge(w: World, seed: int) -> Outcome:
    """The party once vouched for an address now held by someone who replays the party's
    captured challenge answer."""
    from tests.e2e.hostile import EndpointImpostor
    from verde.protocol.peers.endpoints import answer_challenge, sign_endpoint

    impostor = EndpointImpostor()
    address = w.serve(impostor)
    impostor.record = sign_endpoint(w.key("honest"), address)
    impostor.replayed = answer_challenge(w.key("honest"), "ab" * 16, address)
    spec = spec_for(seed)
    rh, rc = w.result(w.honest, spec), w.result(w.cheat, spec)
    did = w.client.open_dispute(spec, [(w.cheat, rc),
                                       (address, rh, json.dumps(impostor.record.to_json()))])
    st = w.wait(did)
    return {"ok": st.status == "unreachable" and w.lost("honest") == 0, "disputes": 1}


def _bad_record(kind: str) -> Callable[[World, int], Outcome]:
    def run(w: World, seed: int) -> Outcome:
        from proofs import SigningKey
        from verde.protocol.peers.endpoints import sign_endpoint

        spec = spec_for(seed)
        rh, rc = w.result(w.honest, spec), w.result(w.cheat, spec)
        if kind == "foreign":
            doc = sign_endpoint(SigningKey.generate(), DEAD).to_json()
        elif kind == "expired":
            doc = sign_endpoint(w.key("honest"), DEAD, ttl_s=60,
                                now=time.time() - 7200).to_json()
        else:
            doc = sign_endpoint(w.key("honest"), w.honest).to_json()
            doc["payload"]["address"] = DEAD
        code = _refused(lambda: w.client.open_dispute(
            spec, [(w.cheat, rc), (w.honest, rh, json.dumps(doc))]))
        return {"ok": code is not None and "INVALID_ARGUMENT" in code, "code": code}

    return run


def forged_result(w: World, seed: int) -> Outcome:
    spec = spec_for(seed)
    rh, rc = w.result(w.honest, spec), w.result(w.cheat, spec)
    doc = json.loads(rh)
    doc["payload"]["final_state"] = "0" * 64
    code = _refused(lambda: w.client.open_dispute(spec, [(w.cheat, rc),
                                                         (DEAD, json.dumps(doc))]))
    return {"ok": code is not None and w.lost("honest") == 0, "code": code}


def reopen_spam(w: World, seed: int) -> Outcome:
    spec = spec_for(seed)
    rh, rc = w.result(w.honest, spec), w.result(w.cheat, spec)
    did = w.client.open_dispute(spec, [(w.cheat, rc, w.record(w.cheat)),
                                       (w.honest, rh, w.record(w.honest))])
    for i in range(50):
        w.client.open_dispute(spec, [(f"127.0.0.1:{2 + i}", rc), (f"127.0.0.1:{60 + i}", rh)])
    return {"ok": w.winner_key(did) == w.key("honest").public_key.hex(), "disputes": 1}


def withheld_result(w: World, seed: int) -> Outcome:
    from arbiter.delegate import delegate
    from tests.e2e.hostile import Withholder
    from verde.protocol.jobs.spec import JobSpec

    withholder = w.serve(Withholder())
    res = delegate(JobSpec.from_mapping(spec_for(seed)), [w.honest, withholder, w.cheat],
                   w.client)
    return {"ok": res.honest == [w.honest] and res.withheld == [withholder]
            and res.cheaters == [w.cheat], "disputes": len(res.disputes)}


#: The honest outcome each strategy must end with (besides no loss of the honest side).
EXPECTED = {"address_hijack": "unreachable", "replayed_challenge_answer": "unreachable",
            "foreign_endpoint_record": "refused_at_open",
            "expired_endpoint_record": "refused_at_open",
            "forged_endpoint_record": "refused_at_open",
            "forged_result_naming_the_honest_provider": "refused_at_open"}

NETWORK: dict[str, Callable[[World, int], Outcome]] = {
    "framing_with_a_made_up_address": framing,
    "front_running_the_client": front_running,
    "address_hijack": address_hijack,
    "relayed_endpoint_record": relayed_record,
    "replayed_challenge_answer": replayed_challenge,
    "foreign_endpoint_record": _bad_record("foreign"),
    "expired_endpoint_record": _bad_record("expired"),
    "forged_endpoint_record": _bad_record("forged"),
    "forged_result_naming_the_honest_provider": forged_result,
    "re_open_spam": reopen_spam,
    "withheld_result": withheld_result,
}


def hostile_modes(w: World, seed: int) -> dict[str, Outcome]:
    """Every wire-level mode of tests/e2e/hostile.py as one side of a dispute."""
    from proofs import SigningKey
    from tests.e2e.hostile import MODES, serve_hostile
    from verde.protocol.faults import CheatingProvider, FaultPlan

    spec = spec_for(seed)
    rh = w.result(w.honest, spec)
    inner = CheatingProvider(SigningKey.from_seed(b"adv-inner".ljust(32, b"\0")),
                             plan=FaultPlan(compute="corrupt_op", step=CHEAT_STEP))
    job = inner.submit(spec)
    opened = {}
    for i, mode in enumerate(sorted(MODES)):
        key = SigningKey.from_seed(f"adv-hostile-{i}".encode().ljust(32, b"\0"))
        server, address, servicer = serve_hostile(inner, key, mode)
        w.servers.append(server)
        mine = (address, json.dumps(servicer.result(job).to_json(), sort_keys=True))
        opened[mode] = w.client.open_dispute(spec, [mine, (w.honest, rh)])
    honest = w.key("honest").public_key.hex()
    return {f"hostile:{m}": {"ok": w.winner_key(did) == honest, "disputes": 1}
            for m, did in opened.items()}


# -- fuzz ------------------------------------------------------------------------------------

def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def fuzz(w: World, n: int, seed: int, threads: int = 4) -> dict[str, Any]:
    import grpc
    import torch
    from _fuzz_messages import SERVER_FAULTS, arbiter_targets, provider_targets, send

    from arbiter.codec import query_to_pb, state_to_chunks
    from arbiter.proto import verde_pb2 as pb
    from proofs import SignedMessage
    from verde.protocol.dispute.state import DisputeState
    from verde.protocol.jobs.spec import JobSpec
    from verde.protocol.peers.state import state_to_blobs

    spec = spec_for(seed + 1)
    job = JobSpec.from_mapping(spec)
    rh, rc = w.result(w.honest, spec), w.result(w.cheat, spec)
    entries = [pb.ProviderEntry(address=w.cheat, signed_result_json=rc,
                                endpoint_json=w.record(w.cheat)),
               pb.ProviderEntry(address=w.honest, signed_result_json=rh,
                                endpoint_json=w.record(w.honest))]
    opening = pb.OpenDisputeRequest(spec_json=json.dumps(spec), providers=entries)
    state = DisputeState(job, SignedMessage.from_json(json.loads(rc)),
                         SignedMessage.from_json(json.loads(rh)))
    query = state.next_queries()[1]
    did = w.client.open_dispute(spec, [(e.address, e.signed_result_json, e.endpoint_json)
                                       for e in entries])
    w.wait(did)
    tiny = spec_for(seed + 2, steps=1)
    targets = {
        "provider": provider_targets(json.dumps(tiny), job.job_id,
                                     query_to_pb(query).query_json, w.honest,
                                     list(state_to_chunks(state_to_blobs(
                                         {"w": torch.arange(6.0).reshape(2, 3)})))),
        "arbiter": arbiter_targets(opening, did)}
    pids = {"provider": w.services.procs[0].pid, "arbiter": w.services.procs[3].pid}
    rss_before = {k: rss_kib(p) for k, p in pids.items()}
    codes: Counter[str] = Counter()
    faults: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        rng = random.Random(seed * 7919 + k)
        channels = {"provider": grpc.insecure_channel(w.honest),
                    "arbiter": grpc.insecure_channel(w.arbiter)}
        try:
            for _ in range(k, n, threads):
                side = rng.choice(("provider", "arbiter"))
                target = rng.choice(targets[side])
                code = send(channels[side], rng, target, 30.0)
                with lock:
                    codes[f"{side}:{code}"] += 1
                    if code in SERVER_FAULTS and len(faults) < 20:
                        faults.append(f"{target.path}: {code}")
        finally:
            for ch in channels.values():
                ch.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    elapsed = time.perf_counter() - start
    alive = {k: w.services.procs[i].poll() is None for k, i in (("provider", 0),
                                                                 ("arbiter", 3))}
    return {"messages": sum(codes.values()), "seconds": round(elapsed, 1),
            "server_faults": sum(v for c, v in codes.items()
                                 if c.split(":")[1] in SERVER_FAULTS),
            "crashes": sum(not a for a in alive.values()),
            "rss_kib_before": rss_before,
            "rss_kib_after": {k: rss_kib(p) if alive[k] else -1 for k, p in pids.items()},
            "codes": dict(sorted(codes.items())), "fault_examples": faults}


# -- main ------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", action="store_true",
                    help="500 seeded disputes and 100,000 fuzzed messages")
    ap.add_argument("--disputes", type=int, default=None, help="in-process seeded disputes")
    ap.add_argument("--fuzz", type=int, default=None, help="fuzzed messages")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--deadline", type=int, default=4, help="the arbiter's --deadline")
    args = ap.parse_args(argv)
    n_disputes = args.disputes if args.disputes is not None else (500 if args.long else 34)
    n_fuzz = args.fuzz if args.fuzz is not None else (100_000 if args.long else 2_000)
    from _machine import machine_info

    t0 = time.perf_counter()
    protocol = protocol_campaign(n_disputes, args.seed)
    with tempfile.TemporaryDirectory(prefix="adv-bench-") as tmp:
        w = World(Path(tmp), args.deadline)
        try:
            network = {name: run(w, 1000 + i) for i, (name, run) in enumerate(NETWORK.items())}
            network.update(hostile_modes(w, 2000))
            fuzzed = fuzz(w, n_fuzz, args.seed)
            honest_losses = w.lost("honest") + w.lost("victim")
        finally:
            w.close()
    strategies = protocol_strategies() + list(network)
    service_disputes = sum(int(o.get("disputes", 0)) for o in network.values())
    doc = {
        "bench": "adversarial",
        "strategies": len(set(strategies)),
        "strategy_names": strategies,
        "seeded_disputes": protocol["disputes"] + service_disputes,
        "seeded_disputes_in_process": protocol["disputes"],
        "disputes_over_services": service_disputes,
        "faults_without_effect": protocol["no_effect"],
        "honest_wins": protocol["honest_wins"] + sum(
            int(o.get("disputes", 0)) for o in network.values() if o["ok"]),
        "honest_outcome_all": not protocol["losses"] and all(o["ok"] for o in network.values()),
        "honest_losses_recorded": honest_losses,
        "failed_strategies": sorted(k for k, o in network.items() if not o["ok"]),
        "service_outcomes": dict(Counter(EXPECTED.get(k, "decided_for_honest")
                                         for k, o in network.items() if o["ok"])),
        "protocol_losses": protocol["losses"][:5],
        "fuzz": fuzzed,
        "seconds": round(time.perf_counter() - t0, 1),
        **machine_info(),
    }
    print(json.dumps(doc, sort_keys=True))


if __name__ == "__main__":
    main()
