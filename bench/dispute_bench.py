"""Cost of a refereed-delegation dispute on a training job of a few hundred steps.

Prints ONE JSON line: job time, dispute time, rounds, bytes moved (serialised size of every
query and answer), arbiter FLOPs as a fraction of job FLOPs, and the provider's commitment
overhead as a fraction of step time. The provider hashes each state beside the next step, so
``commit_overhead_fraction`` is what the commitments cost on the critical path (the time the
run waited for them, plus the Merkle tree, over the step time of the same run);
``commit_cost_fraction`` is what hashing one state costs against one step, both measured alone
(minimum of repeats, robust to a shared machine). The obvious alternative to a dispute is the
arbiter re-running the whole job; that costs one job time and 100% of the job FLOPs, measured
in the same run as ``job_s``. A human table goes to stderr. The machine is on the line.

Usage: python bench/dispute_bench.py [--program mlp|gpt] [--steps 300] [--hidden 64]
       [--batch 256]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--program", choices=("mlp", "gpt"), default="mlp")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="numba threads (results equal)")
    args = parser.parse_args()

    from repops import _numba

    _numba.set_num_threads(args.threads)
    from _dispute import timed_dispute

    from proofs import SigningKey
    from verde.protocol.dispute.recompute import OPS_EXECUTED
    from verde.protocol.faults import CheatingProvider, FaultPlan
    from verde.protocol.graph.admission import admit_job
    from verde.protocol.graph.budget import node_flops
    from verde.protocol.graph.execution import expected_structure
    from verde.protocol.jobs.spec import JobSpec
    from verde.protocol.peers import LocalPeer
    from verde.protocol.provider.provider import Provider

    if args.program == "mlp":
        job = {"program": "mlp", "config": {"hidden": args.hidden},
               "dataset": {"name": "digits"}}
    else:  # a small GPT: 2 layers, width 64, sequences of 32 tokens
        job = {"program": "gpt", "config": {"vocab": 64, "d_model": 64, "layers": 2,
                                            "heads": 4},
               "dataset": {"name": "tokens", "vocab": 64, "seq_len": 32}}
    spec = JobSpec.from_mapping({
        **job, "optimizer": {"name": "adam", "lr": 0.01}, "steps": args.steps,
        "batch_size": args.batch, "seed": 11, "checkpoint_interval": 25,
    })  # fmt: skip
    ctx = admit_job(spec)
    warm = Provider(SigningKey.generate(), "warm-up")  # compile kernels outside the timings
    warm.run(spec.with_changes(steps=2))

    honest = Provider(SigningKey.generate(), "honest")
    t0 = time.perf_counter()
    honest.submit(spec)
    job_s = time.perf_counter() - t0
    timings = honest.jobs[spec.job_id].timings

    cheat_step = (2 * args.steps) // 3
    cheater = CheatingProvider(SigningKey.generate(), "cheater",
                               plan=FaultPlan("corrupt_op", step=cheat_step, node=1))
    cheater.submit(spec)

    peers = {"a": LocalPeer(honest), "b": LocalPeer(cheater)}
    before = OPS_EXECUTED["count"]
    done = timed_dispute(spec, peers)
    verdict, stats, dispute_s = done.verdict, done.stats, done.seconds
    ops = OPS_EXECUTED["count"] - before

    # Noise-robust per-step costs (minimum of repeated measurements; the machine may be shared)
    from proofs import MerkleTree
    from proofs.state import StateCommitment
    from verde.protocol.graph.execution import run_step

    record = honest.jobs[spec.job_id]
    state = honest.state_at(record, args.steps)
    step_min = commit_min = float("inf")
    for _ in range(15):
        t = time.perf_counter()
        run_step(ctx, state, args.steps)
        step_min = min(step_min, time.perf_counter() - t)
        t = time.perf_counter()
        StateCommitment.from_tensors(state)
        commit_min = min(commit_min, time.perf_counter() - t)
    t = time.perf_counter()
    MerkleTree(record.step_roots)
    merkle_per_step = (time.perf_counter() - t) / args.steps

    structure = expected_structure(ctx, cheat_step)
    shapes: dict[tuple[Any, ...], Any] = {
        ("leaf", name): shape
        for name, (shape, _) in {**ctx.state_structure(), **ctx.batch_structure()}.items()}
    per_node = []
    for node in structure:
        per_node.append(node_flops(node, shapes))
        for j, (_, shape) in enumerate(node["output_meta"]):
            shapes[("node", node["index"], j)] = shape
    job_flops = sum(per_node) * args.steps
    arbiter_flops = per_node[verdict.ruling["node"]] if verdict.reason == "recomputed_operator" \
        else 0
    from _machine import machine_info

    result = {
        "bench": "dispute",
        "program": args.program,
        "steps": args.steps,
        "nodes_per_step": len(structure),
        "job_s": round(job_s, 4),
        "dispute_s": round(dispute_s, 4),
        "dispute_over_rerun": round(dispute_s / job_s, 4),
        "rounds": stats.rounds,
        "messages": stats.messages,
        "bytes_moved": stats.bytes_moved,
        "winner_is_honest": verdict.winner == "a",
        "verdict": verdict.reason,
        "arbiter_ops": ops,
        "job_flops": job_flops,
        "arbiter_flops": arbiter_flops,
        "arbiter_flops_fraction": arbiter_flops / job_flops,
        "step_s_total": round(timings["step_s"], 4),
        "commit_s_total": round(timings["commit_s"], 4),
        "commit_overhead_fraction": timings["commit_s"] / timings["step_s"],
        "step_s_min": step_min,
        "commit_s_min": commit_min + merkle_per_step,
        "commit_cost_fraction": (commit_min + merkle_per_step) / step_min,
        **machine_info(),
    }
    print(json.dumps(result))
    for k, v in result.items():
        print(f"{k:>26}  {v}", file=sys.stderr)


if __name__ == "__main__":
    main()
