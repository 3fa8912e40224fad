"""The whole refereed-delegation story in one process (what ``verde demo`` shows).

Three providers train the same MLP on scikit-learn's digits under ``repops.reproducible()``;
one of them flips one bit in one operator of one step. Their signed results disagree, the
arbiter groups them, runs a dispute between the two groups (phase 1 over the step digests,
phase 2 over the graph of the first differing step, then one recomputed operator — Verde,
Arun et al. 2025), issues a signed verdict certificate, and the certificate is verified
offline (and a tampered copy rejected). Progress goes to a callback, one ``DemoEvent`` at a
time; nothing is printed here.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proofs import SigningKey
from verde.protocol.dispute.multi import Resolution, resolve
from verde.protocol.dispute.verify import verify_verdict_certificate
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.graph.admission import admit_job
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers import LocalPeer, Query
from verde.protocol.provider.provider import Provider


@dataclass(frozen=True)
class DemoEvent:
    """One thing that happened: ``kind`` (job, run, result, dispute, round, verdict,
    certificate, done), a one-line human ``message`` and machine-readable ``data``."""

    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoOutcome:
    resolution: Resolution
    certificate: dict[str, Any] | None
    verified: bool
    tampered_rejected: bool
    seconds: dict[str, float]
    accuracy: float | None = None


def demo_spec(steps: int = 100) -> JobSpec:
    return JobSpec.from_mapping({
        "program": "mlp", "config": {"hidden": 32}, "dataset": {"name": "digits"},
        "optimizer": {"name": "adam", "lr": 0.01}, "steps": steps, "batch_size": 32,
        "seed": 2025, "checkpoint_interval": 20,
    })  # fmt: skip


def _describe(query: Query, event: dict[str, Any]) -> str:
    p = query.params
    what = {
        "step_children": f"children of step-tree node {p.get('position')}",
        "step_leaves": f"state digests of steps {p.get('indices')}",
        "graph_commit": f"graph commitment of step {p.get('step')}",
        "graph_children": f"children of graph node {p.get('position')} (step {p.get('step')})",
        "graph_leaves": f"graph node {p.get('indices')} of step {p.get('step')}",
        "node_inputs": f"inputs of node {p.get('node')} of step {p.get('step')} with proofs",
    }.get(query.kind, query.kind)
    outcome = "answered" if event["type"] == "answer" else "missed the deadline"
    return f"round {query.round:>2}: asks {query.party} for {what}: {outcome}"


def run_demo(
    on_event: Callable[[DemoEvent], None] | None = None,
    *,
    steps: int = 100,
    cheat_step: int | None = None,
    seed: int = 7,
) -> DemoOutcome:
    """Run the story; ``on_event`` receives every ``DemoEvent``. Returns the outcome."""
    emit = on_event or (lambda _event: None)
    seconds: dict[str, float] = {}
    spec = demo_spec(steps)
    t0 = time.perf_counter()
    admit_job(spec)
    emit(DemoEvent("job", f"job {spec.job_id[:16]}…: {spec.program} on digits, {steps} steps, "
                          f"batch {spec.batch_size}, adam, backend {spec.backend}",
                   {"job_id": spec.job_id, "spec": spec.to_dict()}))  # fmt: skip
    cheat_step = cheat_step or max(1, (steps * 2) // 3)
    plan = FaultPlan("corrupt_op", step=cheat_step, node=1, seed=seed)
    providers: dict[str, Provider] = {
        "alice": Provider(SigningKey.generate(), "alice"),
        "bob": CheatingProvider(SigningKey.generate(), "bob", plan=plan),
        "carol": Provider(SigningKey.generate(), "carol"),
    }
    emit(DemoEvent("providers", f"providers alice, bob, carol; bob will flip one bit in an "
                                f"operator output of step {cheat_step}", {"cheater": "bob"}))
    for name, provider in providers.items():
        start = time.perf_counter()
        provider.progress = (
            lambda s, n, name=name: emit(DemoEvent("run", f"{name}: step {s}/{n}",
                                                   {"provider": name, "step": s}))
            if s % max(1, n // 4) == 0 else None
        )  # fmt: skip
        provider.submit(spec)
        payload = provider.result(spec.job_id).payload
        emit(DemoEvent("result", f"{name}: signed result, step root {payload['step_root'][:16]}…"
                                 f" final state {payload['final_state'][:16]}…",
                       {"provider": name, "result": payload,
                        "seconds": time.perf_counter() - start}))  # fmt: skip
    seconds["jobs"] = time.perf_counter() - t0
    arbiter = SigningKey.generate()
    t1 = time.perf_counter()
    resolution = resolve(
        spec,
        {name: LocalPeer(p, name) for name, p in providers.items()},
        arbiter_key=arbiter,
        observer=lambda q, e: emit(DemoEvent("round", _describe(q, e),
                                             {"round": q.round, "kind": q.kind,
                                              "party": q.party})),
        on_dispute=lambda a, b: emit(DemoEvent("dispute", f"dispute opened: {a} (a) vs {b} (b)",
                                               {"a": a, "b": b})),
    )  # fmt: skip
    seconds["disputes"] = time.perf_counter() - t1
    certificate = None
    for record in resolution.disputes:
        v, stats = record.verdict, record.stats
        if stats is None:  # in-process disputes always keep their stats
            raise AssertionError("an in-process dispute without stats")
        winner = {"a": record.a, "b": record.b}.get(v.winner or "", "nobody")
        detail = v.reason
        if v.ruling.get("op"):
            detail += (f": step {v.ruling['step']}, node {v.ruling['node']} ({v.ruling['op']}), "
                       f"recomputed {v.ruling['recomputed'][0][:16]}…")
        emit(DemoEvent("verdict", f"verdict: {winner} wins ({detail}); {stats.rounds} "
                                  f"rounds, {stats.bytes_moved} bytes",
                       {"verdict": v.to_json(), "rounds": stats.rounds}))  # fmt: skip
        certificate = record.certificate
    verified = tampered_rejected = False
    if certificate is not None:
        t2 = time.perf_counter()
        checked = verify_verdict_certificate(certificate, trusted_arbiters=[arbiter.public_key])
        verified = True
        seconds["verify"] = time.perf_counter() - t2
        emit(DemoEvent("certificate", f"certificate verified offline: {checked.reason}, loser "
                                      f"{next(iter(checked.losers.values()))[:16]}…",
                       {"certificate": certificate}))  # fmt: skip
        tampered = copy.deepcopy(certificate)
        tampered["body"]["verdict"]["winner"] = "b"
        try:
            verify_verdict_certificate(tampered)
        except Exception:  # any rejection is the point
            tampered_rejected = True
        emit(DemoEvent("certificate", "a copy with the winner changed is "
                       + ("rejected" if tampered_rejected else "ACCEPTED (bug)"), {}))
    accuracy = _accuracy(providers["alice"], spec)
    emit(DemoEvent("done", f"accepted result from {', '.join(resolution.honest)}; cheaters: "
                           f"{', '.join(resolution.cheaters) or 'none'}; model accuracy on "
                           f"digits {accuracy:.1%}",
                   {"honest": resolution.honest, "cheaters": resolution.cheaters,
                    "seconds": seconds}))  # fmt: skip
    return DemoOutcome(resolution, certificate, verified, tampered_rejected, seconds, accuracy)


def _accuracy(provider: Provider, spec: JobSpec) -> float:
    import torch

    record = provider.jobs[spec.job_id]
    state = provider.state_at(record, spec.steps)
    ctx = record.ctx
    params = {"inner." + n: state["param/" + n] for n in ctx.param_names}
    fields = {k: torch.from_numpy(v) for k, v in ctx.dataset.fields.items()}
    from verde.protocol.jobs.program_call import ProgramCall

    with torch.no_grad():
        logits = torch.func.functional_call(ProgramCall(ctx.program, ctx.module, "outputs"), params,
                                            (fields,))  # fmt: skip
    return float((logits.argmax(1) == fields["y"]).float().mean())
