"""The embedded demo: the whole story on 127.0.0.1 in one process.

Three providers (one cheating), an arbiter on a SQLite file in a temp directory, a real
training job (an MLP on scikit-learn's bundled digits), the dispute round by round, the
verdict, and the verdict certificate checked offline — all through the real gRPC services.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arbiter.arbiter_app import start_arbiter
from arbiter.arbiter_client import ArbiterClient
from arbiter.delegate import delegate
from arbiter.provider_app import start_provider
from proofs import SigningKey
from verde.protocol.dispute.multi import Resolution
from verde.protocol.jobs.spec import JobSpec

DEMO_JOB: dict[str, Any] = {
    "program": "mlp", "config": {"hidden": 32}, "dataset": {"name": "digits"},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "steps": 40, "batch_size": 32, "seed": 2026, "checkpoint_interval": 10,
}
DEMO_FAULT = "compute=corrupt_op,step=23,node=5"

Say = Callable[[str], None]


def run_demo(say: Say, *, workdir: Path | None = None,
             verify: Callable[[dict[str, Any]], str] | None = None) -> Resolution:
    """Run the demo, narrating through ``say``; returns the delegation outcome."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="verde-demo-"))
    tmp.mkdir(parents=True, exist_ok=True)
    spec = JobSpec.from_mapping(DEMO_JOB)
    keys = {}
    for name in ("alice", "bob", "mallory", "arbiter"):
        keys[name] = tmp / f"{name}.pem"
        SigningKey.generate().save(keys[name], overwrite=True)
    started: list[Any] = []
    addresses = {}
    try:
        for name in ("alice", "bob", "mallory"):
            fault = DEMO_FAULT if name == "mallory" else None
            running = start_provider(keys[name], "127.0.0.1:0", fault=fault)
            started.append(running)
            addresses[name] = f"127.0.0.1:{running.port}"
            say(f"provider {name:8s} on {addresses[name]}"
                + (f"  (cheats: {DEMO_FAULT})" if fault else ""))
        db = tmp / "arbiter.db"
        arb = start_arbiter(keys["arbiter"], "127.0.0.1:0", f"sqlite:///{db}", workers=2)
        say(f"arbiter          on 127.0.0.1:{arb.port}  (SQLite {db})")
        say(f"job {spec.job_id[:16]}: {spec.program} on {spec.dataset['name']}, "
            f"{spec.steps} steps, batch {spec.batch_size}")
        client = ArbiterClient(f"127.0.0.1:{arb.port}")
        names = {addr: name for name, addr in addresses.items()}
        last: dict[str, int] = {}

        def progress(addr: str, done: int, total: int) -> None:
            if done in (total, total // 2) and last.get(addr) != done:
                last[addr] = done
                say(f"  {names[addr]:8s} trained {done}/{total} steps")

        t0 = time.perf_counter()
        try:
            outcome = delegate(spec, list(addresses.values()), client,
                               report=lambda m: say("  " + _named(m, names)),
                               progress=progress)
        finally:
            client.close()
            arb.shutdown()
        say(f"done in {time.perf_counter() - t0:.1f}s")
        say("honest:    " + ", ".join(names[a] for a in outcome.honest))
        say("dishonest: " + ", ".join(names[a] for a in outcome.cheaters))
        for d in outcome.disputes:
            ruling = d.verdict.ruling
            winner = {"a": d.a, "b": d.b}.get(d.verdict.winner or "")
            say(f"verdict of dispute {d.dispute_id[:16]}: winner "
                f"{names.get(winner or '', 'none')}, reason {d.verdict.reason}"
                + (f", node {ruling.get('node')} ({ruling.get('op')})" if ruling else ""))
            if d.certificate is not None:
                path = tmp / f"verdict-{d.dispute_id[:16]}.json"
                path.write_text(json.dumps(d.certificate, indent=2, sort_keys=True))
                say(f"certificate written to {path}")
                if verify is not None:
                    say("certificate verified offline: " + verify(d.certificate))
        return outcome
    finally:
        for running in started:
            running.close(0)


def _named(message: str, names: dict[str, str]) -> str:
    for addr, name in names.items():
        message = message.replace(addr, name)
    return message
