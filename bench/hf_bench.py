"""Cost of delegating a Hugging Face model with verde: a MiniLM-sized encoder, a
GPT-2-small-sized decoder and a small LLaMA-family decoder (random init from configs built in
code; nothing is downloaded).

Prints ONE JSON line with, per model, measured against the obvious alternative in the same run
(plain PyTorch running the same step function without verde):

* ``provider_over_plain_step`` -- a provider's step (repops strict, bit-reproducible, dropout
  on the job's stream) over the plain torch step (vendor kernels, same module and batch);
* ``commit_share`` -- hashing the state (its commitment) as a share of step plus commitment;
* ``dispute_s``, ``dispute_rounds``, ``dispute_bytes`` -- a dispute between the honest
  provider and one that corrupted an op of the last step, in process; ``arbiter_s`` -- the part
  of it spent by the arbiter (its shape-only replay, checks and the one recomputed op), the
  rest being the providers' answers (replays of the disputed step);
* ``provider_peak_over_plain`` -- peak RSS of a process running the provider's job and
  answering for one traced step, over a process running plain torch steps.

* ``upload_mb_s``, ``fetch_mb_s`` -- the model's parameters uploaded to a provider's gRPC
  service on 127.0.0.1 (``init.params``, what ``verde delegate`` sends for a model directory's
  weights, root checked) and the trained parameters fetched back with their Merkle proofs
  checked against the signed final root (``verde delegate --out``), over a one-step job.

Each phase runs in its own process so that peak memory is its own. The machine is on the line.

Usage: python bench/hf_bench.py [--models minilm,gpt2,llama] [--batch 8] [--seq 16] [--steps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS: dict[str, tuple[dict[str, Any], str]] = {
    # all-MiniLM-L6-v2's shape: 6 layers, width 384, 12 heads, 22.7M parameters
    "minilm": ({"model_type": "bert", "vocab_size": 30522, "hidden_size": 384,
                "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
                "max_position_embeddings": 512}, "sequence-classification"),
    # GPT-2 small's shape: 12 layers, width 768, 12 heads, 124M parameters
    "gpt2": ({"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12,
              "n_head": 12, "n_positions": 1024}, "causal-lm"),
    # a LLaMA-family decoder (RMSNorm, rotary positions, SwiGLU, grouped-query attention) at
    # a quarter of TinyLlama-1.1B's depth and width: 8 layers, width 512, 8 query / 4 kv heads
    "llama": ({"model_type": "llama", "vocab_size": 32000, "hidden_size": 512,
               "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 4,
               "intermediate_size": 1408, "max_position_embeddings": 1024}, "causal-lm"),
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _spec(model: str, workdir: Path, batch: int, seq: int, steps: int) -> Any:
    import numpy as np

    from verde.protocol.jobs.datasets import file_dataset_root
    from verde.protocol.jobs.spec import JobSpec

    config, task = MODELS[model]
    vocab = config["vocab_size"]
    gen = np.random.Generator(np.random.Philox(key=5))
    n = batch * 4
    ids = gen.integers(1, vocab, size=(n, seq)).astype(np.int64)
    mask = np.ones((n, seq), dtype=np.int64)
    mask[::2, seq - seq // 4:] = 0
    fields = {"input_ids": ids, "attention_mask": mask}
    if task == "sequence-classification":
        fields["labels"] = (ids[:, 0] % 2).astype(np.int64)
    location = workdir / f"{model}.npz"
    np.savez(location, **fields)
    job_config: dict[str, Any] = {"task": task, "hf_config": config}
    if task == "sequence-classification":
        job_config["num_labels"] = 2
    return JobSpec.from_mapping({
        "program": "hf", "config": job_config,
        "dataset": {"name": "file", "location": str(location),
                    "root": file_dataset_root(location)},
        "optimizer": {"name": "adamw", "lr": 1e-4}, "steps": steps, "batch_size": batch,
        "seed": 7, "checkpoint_interval": steps,
    })


def phase_plain(spec: Any, repeats: int) -> dict[str, Any]:
    """Plain torch: the same step function on vendor kernels, no tracing, no commitments."""
    from verde.protocol.jobs.context import JobContext

    ctx = JobContext.from_spec(spec)
    state = ctx.initial_state()
    batch = ctx.batch(1)
    best = float("inf")
    for _ in range(repeats):
        leaves = ctx.prepare_leaves(state)
        t = time.perf_counter()
        ctx.step(leaves, batch, 1)
        best = min(best, time.perf_counter() - t)
    return {"plain_step_s": best, "peak_rss_mb": _peak_rss_mb()}


def phase_provider(spec: Any, repeats: int) -> dict[str, Any]:
    """An honest provider: runs the job, then replays the last step traced (its dispute work)."""
    from proofs import SigningKey
    from proofs.state import StateCommitment
    from verde.protocol.graph.execution import run_step
    from verde.protocol.provider.provider import Provider

    provider = Provider(SigningKey.generate(), "honest", keep_values_below=0)
    t = time.perf_counter()
    provider.submit(spec)
    job_s = time.perf_counter() - t
    record = provider.jobs[spec.job_id]
    t = time.perf_counter()
    provider.graph(record, spec.steps)
    traced_s = time.perf_counter() - t
    state = provider.state_at(record, spec.steps)
    step = commit = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        run_step(record.ctx, state, spec.steps)
        step = min(step, time.perf_counter() - t)
        t = time.perf_counter()
        StateCommitment.from_tensors(state)
        commit = min(commit, time.perf_counter() - t)
    return {"job_s": job_s, "provider_step_s": step, "commit_s": commit,
            "traced_replay_s": traced_s, "peak_rss_mb": _peak_rss_mb()}


def phase_dispute(spec: Any, workdir: Path) -> dict[str, Any]:
    """An honest provider against one that corrupted an op of the last step.

    Both providers keep their checkpoints on disk (``provider serve --checkpoint-dir``, what
    a provider of a real model runs with): in memory, two GPT-2-small providers' states and
    their dispute replays in one process outgrow 24 GiB.
    """
    from _dispute import timed_dispute

    from proofs import SigningKey
    from verde.protocol.faults import CheatingProvider, FaultPlan
    from verde.protocol.peers import LocalPeer
    from verde.protocol.peers.messages import Answer, Query
    from verde.protocol.provider.provider import Provider

    class TimedPeer(LocalPeer):
        answering_s = 0.0

        def answer(self, query: Query) -> Answer:
            t = time.perf_counter()
            try:
                return super().answer(query)
            finally:
                TimedPeer.answering_s += time.perf_counter() - t

    honest = Provider(SigningKey.generate(), "honest", workdir / "honest-checkpoints",
                      keep_values_below=0)
    cheater = CheatingProvider(SigningKey.generate(), "cheater", workdir / "cheat-checkpoints",
                               keep_values_below=0,
                               plan=FaultPlan("corrupt_op", step=spec.steps, node=7))
    honest.submit(spec)
    cheater.submit(spec)
    done = timed_dispute(spec, {"a": TimedPeer(honest), "b": TimedPeer(cheater)})
    return {"dispute_s": done.seconds, "dispute_rounds": done.stats.rounds,
            "dispute_bytes": done.stats.bytes_moved,
            "arbiter_s": done.seconds - TimedPeer.answering_s,
            "honest_won": done.verdict.winner == "a", "verdict": done.verdict.reason}


def phase_transfer(spec: Any) -> dict[str, Any]:
    """Upload the parameters to a provider over gRPC, run one step, fetch them back verified."""
    from arbiter.channels import build_server
    from arbiter.proto import verde_pb2_grpc as rpc
    from arbiter.provider_client import GrpcProviderPeer
    from arbiter.provider_host import ProviderHost
    from arbiter.provider_service import ProviderServicer
    from proofs import SigningKey
    from verde.protocol.jobs.context import PARAM, JobContext
    from verde.protocol.jobs.initial import with_initial_parameters
    from verde.protocol.peers.fetch import fetch_final_state
    from verde.protocol.peers.state import state_to_blobs
    from verde.protocol.provider.provider import Provider

    one = spec.with_changes(steps=1, checkpoint_interval=1)
    ctx = JobContext.from_spec(one)
    one, upload = with_initial_parameters(
        one, ctx.program.initial_parameters(ctx.module, one.seed))
    nbytes = sum(t.numel() * t.element_size() for t in upload.values())
    host = ProviderHost(Provider(SigningKey.generate(), "transfer", keep_values_below=0))
    server, port = build_server("127.0.0.1:0", lambda s: rpc.add_ProviderServicer_to_server(
        ProviderServicer(host), s))
    try:
        with GrpcProviderPeer(f"127.0.0.1:{port}") as peer:
            blobs = state_to_blobs(upload)
            t = time.perf_counter()
            peer.put_state(blobs)
            upload_s = time.perf_counter() - t
            peer.submit(one.to_dict())
            peer.wait(one.job_id, timeout_s=3600)
            names = [PARAM + n for n in ctx.param_names]
            structure = JobContext.from_spec(one).state_structure()
            t = time.perf_counter()
            fetch_final_state(peer, one.job_id, 1, names,
                              structure={n: structure[n] for n in names})
            fetch_s = time.perf_counter() - t
    finally:
        server.stop(0)
        host.close()
    mb = nbytes / 2**20
    return {"transfer_mb": mb, "upload_mb_s": mb / upload_s, "fetch_mb_s": mb / fetch_s}


def _run_phase(name: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", name, "--models", model, "--batch",
           str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             [str(Path(__file__).resolve().parents[1]),
                              os.environ.get("PYTHONPATH", "")])})
    if res.returncode != 0:
        raise SystemExit(f"phase {name} of {model} failed:\n{res.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="minilm,gpt2,llama")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--phase", choices=("plain", "provider", "dispute", "transfer"))
    args = parser.parse_args()

    from repops import _numba

    _numba.set_num_threads(max(1, os.cpu_count() or 1))
    if args.phase is not None:
        with tempfile.TemporaryDirectory() as workdir:
            spec = _spec(args.models, Path(workdir), args.batch, args.seq, args.steps)
            from verde.protocol.graph.admission import admit_job

            admit_job(spec)
            if args.phase == "plain":
                out = phase_plain(spec, args.repeats)
            elif args.phase == "provider":
                out = phase_provider(spec, args.repeats)
            elif args.phase == "transfer":
                out = phase_transfer(spec)
            else:
                out = phase_dispute(spec, Path(workdir))
        print(json.dumps(out))
        return

    from _machine import machine_info

    result: dict[str, Any] = {"bench": "hf", "batch": args.batch, "seq": args.seq,
                              "steps": args.steps}
    for model in args.models.split(","):
        plain = _run_phase("plain", model, args)
        provider = _run_phase("provider", model, args)
        dispute = _run_phase("dispute", model, args)
        transfer = _run_phase("transfer", model, args)
        step, commit = provider["provider_step_s"], provider["commit_s"]
        result[model] = {
            "plain_step_s": round(plain["plain_step_s"], 4),
            "provider_step_s": round(step, 4),
            "provider_over_plain_step": round(step / plain["plain_step_s"], 2),
            "commit_s": round(commit, 4),
            "commit_share": round(commit / (step + commit), 4),
            "traced_replay_s": round(provider["traced_replay_s"], 3),
            **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in dispute.items()},
            "provider_peak_rss_mb": round(provider["peak_rss_mb"]),
            "plain_peak_rss_mb": round(plain["peak_rss_mb"]),
            "provider_peak_over_plain": round(provider["peak_rss_mb"] / plain["peak_rss_mb"], 2),
            **{k: round(v, 1) for k, v in transfer.items()},
        }
        for k, v in result[model].items():  # as each model ends: long runs show progress
            print(f"{model:>7} {k:>26}  {v}", file=sys.stderr, flush=True)
    result.update(machine_info())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
