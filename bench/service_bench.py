"""Dispute latency over the gRPC services vs the in-process protocol; prints ONE JSON line.

Setup: an honest and a cheating ``verde provider serve`` process and one ``verde arbiter
serve`` process (SQLite, ``--workers`` = the concurrency), all on 127.0.0.1 with OS-chosen
ports. Every dispute is on its own tiny job (mlp on digits, distinct seeds), so provider
caches are cold per dispute in both settings; each setting gets one warm-up dispute first.

Measured:
* ``concurrent``: N disputes opened at once on the one arbiter; latency = open -> decided as
  seen by a client polling every 20 ms; median and p90.
* ``sequential``: M disputes one at a time over the services, and the same M disputes driven
  in this process by ``verde.protocol.dispute.driver.run_dispute`` with
  ``verde.protocol.peers.LocalPeer`` (no network, no database); ``grpc_overhead_ratio`` = median
  services / median in-process.

Run: ``.venv/bin/python bench/service_bench.py [--concurrent 20] [--sequential 5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
FAULT_STEP = 3


def spec_for(seed: int, steps: int) -> dict[str, Any]:
    return {"program": "mlp", "dataset": {"name": "digits"},
            "optimizer": {"name": "sgd", "lr": 0.1}, "steps": steps, "batch_size": 8,
            "seed": seed}


class Services:
    """The provider and arbiter processes; every one is killed (process group) on close."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: Sequence[str], timeout_s: float = 300.0) -> str:
        log = self.workdir / f"{name}.log"
        script = Path(sys.executable).parent / "verde"
        cmd = [str(script)] if script.exists() else [sys.executable, "-c",
                                                     "from cli.main import main; main()"]
        with log.open("wb") as fh:
            proc = subprocess.Popen([*cmd, *argv], stdin=subprocess.DEVNULL, stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            match = LISTENING.search(log.read_text(errors="replace"))
            if match:
                return f"127.0.0.1:{match.group(1)}"
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start within {timeout_s:g}s")

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def key_file(workdir: Path, name: str) -> Path:
    from proofs import SigningKey

    path = workdir / f"{name}.pem"
    SigningKey.from_seed(f"bench-{name}".encode().ljust(32, b"\0")[:32]).save(path)
    return path


def grpc_results(address: str, specs: Sequence[dict[str, Any]]) -> list[str]:
    from arbiter.provider_client import GrpcProviderPeer

    peer = GrpcProviderPeer(address)
    try:
        ids = [peer.submit(s) for s in specs]
        out = []
        for job_id in ids:
            peer.wait(job_id, timeout_s=1800, poll_s=0.2)
            out.append(json.dumps(peer.result(job_id).to_json(), sort_keys=True))
        return out
    finally:
        peer.close()


def timed_dispute(client: Any, spec: dict[str, Any], entries: list[tuple[str, str]]
                  ) -> tuple[float, str, int]:
    """Open one dispute and poll it to its end; (seconds, winner, rounds)."""
    t0 = time.perf_counter()
    did = client.open_dispute(spec, entries)
    while True:
        st = client.status(did)
        if st.status in ("decided", "failed"):
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    if st.status != "decided":
        raise RuntimeError(f"dispute {did} {st.status}: {st.error}")
    return elapsed, str(json.loads(st.verdict_json)["winner"]), int(st.rounds)


def in_process_latencies(specs: Sequence[dict[str, Any]]) -> tuple[list[float], list[str]]:
    """Train in this process, then time ``run_dispute`` with LocalPeers for each job."""
    from proofs import SigningKey
    from verde.protocol.dispute.driver import run_dispute
    from verde.protocol.dispute.state import DisputeState
    from verde.protocol.faults import CheatingProvider, FaultPlan
    from verde.protocol.jobs.spec import JobSpec
    from verde.protocol.peers.local import LocalPeer
    from verde.protocol.provider.provider import Provider

    honest = Provider(SigningKey.from_seed(b"bench-local-honest".ljust(32, b"\0")))
    cheat = CheatingProvider(SigningKey.from_seed(b"bench-local-cheat".ljust(32, b"\0")),
                             plan=FaultPlan(compute="corrupt_op", step=FAULT_STEP))
    jobs = [JobSpec.from_mapping(s) for s in specs]
    for job in jobs:
        honest.submit(job)
        cheat.submit(job)
    times, winners = [], []
    for job in jobs:
        t0 = time.perf_counter()
        state = DisputeState(job, cheat.result(job.job_id), honest.result(job.job_id),
                             deadline_s=60.0)
        verdict = run_dispute(state, {"a": LocalPeer(cheat), "b": LocalPeer(honest)})
        times.append(time.perf_counter() - t0)
        winners.append(str(verdict.winner))
    return times, winners


def p90(xs: Sequence[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(0.9 * (len(s) - 1)))]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrent", type=int, default=20)
    ap.add_argument("--sequential", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args(argv)
    say: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    workdir = Path(tempfile.mkdtemp(prefix="verde-service-bench-"))
    seeds_warm = [1000]
    seeds_seq = list(range(2000, 2000 + args.sequential))
    seeds_conc = list(range(3000, 3000 + args.concurrent))
    all_specs = [spec_for(s, args.steps) for s in seeds_warm + seeds_seq + seeds_conc]
    services = Services(workdir)
    try:
        say("starting provider and arbiter processes ...")
        with ThreadPoolExecutor(max_workers=3) as pool:
            futs = [
                pool.submit(services.start, "honest", ["provider", "serve", "--key",
                            str(key_file(workdir, "honest")), "--listen", "127.0.0.1:0"]),
                pool.submit(services.start, "cheat", ["provider", "serve", "--key",
                            str(key_file(workdir, "cheat")), "--listen", "127.0.0.1:0",
                            "--fault", f"compute=corrupt_op,step={FAULT_STEP}"]),
                pool.submit(services.start, "arbiter", [
                    "arbiter", "serve", "--key", str(key_file(workdir, "arbiter")),
                    "--listen", "127.0.0.1:0", "--db", f"sqlite:///{workdir / 'arb.db'}",
                    "--workers", str(max(args.concurrent, 1)), "--deadline", "120",
                    "--lease", "300"]),
            ]
            honest, cheat, arbiter = (f.result() for f in futs)
        say(f"training {len(all_specs)} jobs on each provider ...")
        with ThreadPoolExecutor(max_workers=2) as pool:
            h, c = pool.map(lambda a: grpc_results(a, all_specs), [honest, cheat])
        entries = [[(cheat, c[i]), (honest, h[i])] for i in range(len(all_specs))]
        from arbiter.arbiter_client import ArbiterClient

        client = ArbiterClient(arbiter)
        try:
            say("services: warm-up and sequential disputes ...")
            timed_dispute(client, all_specs[0], entries[0])
            seq = [timed_dispute(client, all_specs[1 + i], entries[1 + i])
                   for i in range(args.sequential)]
            say(f"services: {args.concurrent} concurrent disputes ...")
            base = 1 + args.sequential
            with ThreadPoolExecutor(max_workers=max(args.concurrent, 1)) as pool:
                conc = list(pool.map(lambda i: timed_dispute(client, all_specs[base + i],
                                                             entries[base + i]),
                                     range(args.concurrent)))
        finally:
            client.close()
    finally:
        services.close()
    say("in-process: warm-up and the same sequential disputes ...")
    local_times, local_winners = in_process_latencies(all_specs[: 1 + args.sequential])
    local_seq = local_times[1:]
    seq_times = [t for t, _, _ in seq]
    conc_times = [t for t, _, _ in conc]
    winners_ok = (all(w == "b" for _, w, _ in seq + conc)
                  and all(w == "b" for w in local_winners))
    doc = {
        "bench": "service",
        "concurrent_disputes": args.concurrent,
        "concurrent_latency_median_s": round(statistics.median(conc_times), 4),
        "concurrent_latency_p90_s": round(p90(conc_times), 4),
        "concurrent_wall_s": round(max(conc_times), 4),
        "sequential_disputes": args.sequential,
        "grpc_latency_median_s": round(statistics.median(seq_times), 4),
        "inprocess_latency_median_s": round(statistics.median(local_seq), 4),
        "grpc_overhead_ratio": round(statistics.median(seq_times)
                                     / statistics.median(local_seq), 3),
        "rounds": seq[0][2],
        "steps": args.steps,
        "all_verdicts_correct": winners_ok,
        "cpu_count": os.cpu_count(),
    }
    say(f"{'setting':<34}{'median s':>10}{'p90 s':>10}")
    say(f"{'in-process run_dispute/LocalPeer':<34}{statistics.median(local_seq):>10.3f}"
        f"{p90(local_seq):>10.3f}")
    say(f"{'gRPC services, one at a time':<34}{statistics.median(seq_times):>10.3f}"
        f"{p90(seq_times):>10.3f}")
    say(f"{f'gRPC services, {args.concurrent} concurrent':<34}"
        f"{statistics.median(conc_times):>10.3f}{p90(conc_times):>10.3f}")
    print(json.dumps(doc, sort_keys=True))


if __name__ == "__main__":
    main()
