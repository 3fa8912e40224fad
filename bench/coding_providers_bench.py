"""Coded training over real verde providers: straggler tolerance and what verification costs.

Everything runs for real in this process: verde providers (``verde.protocol.provider.Provider``)
behind ``LocalPeer``s, each partition gradient a one-step gradient job that the provider commits to
and the coordinator fetches with Merkle proofs (``verde.integration.coded_training.providers``).
Prints one JSON line (stdout) and a table (stderr):

* ``fractional_vs_wait_for_all``: mean step time of fractional repetition (n=4, s=1, each
  worker half the batch) over uncoded wait-for-all (n=4, each worker a quarter of the batch),
  both with the same injected heavy-tailed straggler delays (``verde.coding.delays``: 25% of
  workers per step slowed by ``1 + 4 * (1 + Pareto(1.5))`` times the 50 ms base delay);
* ``provider_overhead``: one partition gradient through a provider (upload the state, submit,
  admission checks, run under repops, commit, sign, fetch and verify proofs) over the same
  gradient computed bare (``run_step`` on the job context) — the price of being able to
  dispute it;
* ``step_with_dispute_s`` and ``dispute_vs_step``: one coded step whose split replica group is
  settled by an in-process verde dispute (a provider corrupting one op), against one honest
  coded step with the same code.

Run: .venv/bin/python bench/coding_providers_bench.py [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from proofs import SigningKey
from verde.coding import Coordinator, FractionalRepetitionCode, HeavyTailed, ReplicatedGroups
from verde.integration.coded_training import CodedJob, provider_workers, train_on_providers
from verde.protocol.faults.plan import FaultPlan
from verde.protocol.faults.provider import CheatingProvider
from verde.protocol.graph.execution import run_step
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.peers.local import LocalPeer
from verde.protocol.provider.provider import Provider

BASE_DELAY_S = 0.05
GRADIENT_MM = 25  # the op of the MLP gradient step that yields the first weight's gradient


class DelayedPeer(LocalPeer):
    """A real provider whose k-th job submission is delayed by ``delays[k]`` seconds."""

    def __init__(self, provider: Provider, delays: np.ndarray) -> None:
        super().__init__(provider)
        self.delays = delays
        self.calls = 0

    def submit(self, spec: Mapping[str, Any]) -> str:
        delay = float(self.delays[min(self.calls, len(self.delays) - 1)])
        self.calls += 1
        time.sleep(delay)
        return super().submit(spec)


def _key(label: str) -> SigningKey:
    return SigningKey.from_seed(label.encode().ljust(32, b"\0")[:32])


def _spec(batch: int, steps: int) -> JobSpec:
    return JobSpec.from_mapping({
        "program": "mlp", "config": {"hidden": 64}, "dataset": {"name": "digits"},
        "optimizer": {"name": "sgd", "lr": 0.1}, "steps": steps, "batch_size": batch, "seed": 3,
    })  # fmt: skip


def _timed_run(job: CodedJob, code: Any, delays: np.ndarray, steps: int, tag: str) -> float:
    peers = {f"{tag}{w}": DelayedPeer(Provider(_key(f"{tag}{w}"), f"{tag}{w}"), delays[:, w])
             for w in range(code.n_workers)}  # fmt: skip
    with Coordinator(code, provider_workers(job, peers)) as coord:
        run = train_on_providers(job, coord, steps)
    return float(np.mean([o.elapsed_s for o in run.outcomes]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import repops

    repops.set_num_threads(1)
    batch, n = 64, 4
    spec = _spec(batch, args.steps)
    slow = HeavyTailed(fraction=0.25)
    delays = BASE_DELAY_S * slow.sample(args.steps, n, np.random.default_rng(args.seed))

    _timed_run(CodedJob(spec, 2), FractionalRepetitionCode(n, 1), delays * 0, 1, "warm")
    fractional = _timed_run(CodedJob(spec, 2), FractionalRepetitionCode(n, 1), delays,
                            args.steps, "fr")  # fmt: skip
    uncoded = _timed_run(CodedJob(spec, 4), FractionalRepetitionCode(n, 0), delays,
                         args.steps, "un")  # fmt: skip

    # one partition gradient: through a provider vs bare
    job = CodedJob(spec, 2)
    params, _ = job.initial_training_state()
    round_ = job.gradient_round(1, params)
    gspec = job.gradient_spec(1, 0, round_.root)
    ctx = JobContext.from_spec(gspec)
    bare = _median(lambda: run_step(ctx, round_.state, 1))
    counter = iter(range(10**6))

    def through_provider() -> None:
        worker = provider_workers(job, {"p": LocalPeer(Provider(_key(f"o{next(counter)}")))})[0]
        worker.partition_gradient(round_, 0)

    provided = _median(through_provider)

    # one split group settled by a dispute, against one honest coded step
    peers: dict[str, LocalPeer] = {f"h{i}": LocalPeer(Provider(_key(f"h{i}"), f"h{i}"))
                                   for i in range(3)}  # fmt: skip
    peers["mallory"] = LocalPeer(CheatingProvider(
        _key("mallory"), "mallory", plan=FaultPlan("corrupt_op", node=GRADIENT_MM)))
    with Coordinator(ReplicatedGroups(4, 2, 1, mode="detect"),
                     provider_workers(job, peers)) as coord:  # fmt: skip
        t0 = time.perf_counter()
        run = train_on_providers(job, coord, 1)
        with_dispute = time.perf_counter() - t0
    honest_step = _timed_run(job, ReplicatedGroups(4, 2, 1, mode="detect"), delays * 0, 1, "hs")
    out = {
        "bench": "coding_providers",
        "steps": args.steps,
        "workers": n,
        "wait_for_all_step_s": round(uncoded, 4),
        "fractional_step_s": round(fractional, 4),
        "fractional_vs_wait_for_all": round(fractional / uncoded, 3),
        "bare_gradient_s": round(bare, 5),
        "provider_gradient_s": round(provided, 5),
        "provider_overhead": round(provided / bare, 2),
        "step_with_dispute_s": round(with_dispute, 3),
        "honest_step_s": round(honest_step, 3),
        "dispute_vs_step": round(with_dispute / honest_step, 2),
        "cheater_named": [d.resolution.cheaters for d in run.disputes] == [["mallory"]],
    }
    for k, v in out.items():
        print(f"{k:>28}: {v}", file=sys.stderr)
    print(json.dumps(out))


def _median(fn: Any, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


if __name__ == "__main__":
    main()
