"""Cost of verified generation (issue 18): tokens/s, commitments, disputes and receipts.

What a user pays, in speed and bytes, for tokens an honest provider can defend in a dispute.

Why these numbers: verde's generate job makes every (prompt, position) a written step so a
dispute can settle a disagreement by recomputing one operator (Verde, Arun et al. 2025); the
provider still decodes fast (prompts batched by length, a key/value cache) and commits every
step's state. The obvious alternative is to run plain ``transformers`` and trust the result, so
that is the baseline, measured in the same run.

The model is a GPT-2-style (``--model llama``: a Llama-style) decoder from a small config built
in code with seeded weights (the job's own initial parameters); nothing is downloaded. 8
prompts of lengths 5..12, some equal (the provider batches those), decode ``--max-new-tokens``
tokens each, once greedy and once with top-p sampling (temperature 0.8, top-p 0.9). There are
no stop tokens, so each prompt yields exactly ``max_new_tokens`` tokens on both sides.

Prints ONE JSON line with, per decoding mode (``greedy``, ``top_p``):

* ``tokens_per_s_transformers`` -- plain ``model.generate`` on the same module class, the same
  weights and the same 8 prompts as one left-padded batch (how ``transformers`` batches; vendor
  kernels, its own key/value cache, greedy or its own top-p sampler; best of ``--repeats``);
* ``tokens_per_s_verde`` -- an honest ``Provider.submit`` end to end (admission, the job's
  initial state, batched KV-cached decoding under repops, every step's state committed, the
  Merkle tree over the step roots, the signed result; best of ``--repeats``), and
  ``verde_over_transformers`` = verde's tokens/s over transformers' (> 1: verde is faster);
* ``tokens_per_s_decode`` / ``decode_over_transformers`` -- the provider's decoder alone
  (``generation_engine.decode_prompts``, batched by length, KV-cached, no commitments);
  ``nocache_over_transformers`` -- the same decoder recomputing every prefix (``use_cache=
  False``, as the written step does): what the cache equivalence is worth;
* ``commit_share`` -- the provider's commitment time (``JobRecord.timings["commit_s"]``: time
  its run waited for state hashing, plus the Merkle tree) over decoding plus commitment
  (``timings["step_s"] + commit_s``);
* ``token_agreement_with_transformers`` (greedy only) -- the share of positions where verde's
  token equals transformers' (a check that the baseline runs the same model; kernels differ,
  so a near-tie could flip a token; sampled tokens come from different generators);
* ``dispute_s``, ``dispute_rounds``, ``dispute_bytes`` -- an in-process dispute between an
  honest provider and a cheater (``--faults``: by default ``wrong_sample`` -- right logits,
  another token -- for greedy and ``quantised_model`` -- bfloat16 weights while committing the
  job's -- for top-p) at the middle step; bytes are every query and answer serialised
  (``DisputeStats``); ``verdict``, ``recomputed_op`` and ``broken_rules`` say how it ended. The
  honest provider must win every dispute: the script exits non-zero otherwise;
* ``receipt_bytes`` -- what a third party needs to check one prompt's tokens without re-running
  the job: the receipt ``verde delegate`` writes (``receipts/prompt-<p>.json``, built by
  ``verde.protocol.peers.receipt``: the job spec, the provider's signed result, the prompt's
  token buffer and done flag with their inclusion proofs against the signed final state),
  fetched from the honest provider as ``verde delegate`` fetches it, every one checked with
  ``verify_receipt``. The largest of the 8, with its parts (``receipt_job_bytes``...).
Torch and repops run ``--threads`` threads on both sides (default 1: on a shared 2-core machine
more threads made both sides several times slower and noisier); the 1-minute load average at
the start is on the line, with the machine (CPU model, ISA).

Usage: python bench/generate_bench.py [--model gpt2|llama] [--n-embd 256] [--layers 4]
[--heads 4] [--vocab 2048] [--positions 128] [--max-new-tokens 16] [--repeats 3] [--threads 1]
[--faults wrong_sample,quantised_model]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Prompt lengths: 8 prompts, two pairs and a triple of equal lengths (batched together).
PROMPT_LENGTHS = (5, 8, 8, 12, 5, 10, 8, 12)
SEED = 17
TOP_P = {"temperature": 0.8, "top_p": 0.9}


def model_config(args: argparse.Namespace) -> dict[str, Any]:
    """The Hugging Face config of the benched model, built in code."""
    if args.model == "gpt2":
        return {"model_type": "gpt2", "vocab_size": args.vocab, "n_embd": args.n_embd,
                "n_layer": args.layers, "n_head": args.heads, "n_positions": args.positions,
                "bos_token_id": 1, "eos_token_id": 2}
    return {"model_type": "llama", "vocab_size": args.vocab, "hidden_size": args.n_embd,
            "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
            "num_key_value_heads": max(1, args.heads // 2),
            "intermediate_size": 4 * args.n_embd, "max_position_embeddings": args.positions,
            "bos_token_id": 1, "eos_token_id": 2}


def write_prompts(path: Path, vocab: int) -> None:
    """8 right-padded prompts of ``PROMPT_LENGTHS`` (seeded ids in 3..vocab-1)."""
    rng = np.random.Generator(np.random.Philox(key=SEED))
    width = max(PROMPT_LENGTHS)
    ids = rng.integers(3, vocab, size=(len(PROMPT_LENGTHS), width)).astype(np.int64)
    mask = (np.arange(width)[None, :] < np.array(PROMPT_LENGTHS)[:, None]).astype(np.int64)
    np.savez(path, input_ids=ids * mask, attention_mask=mask)


def job_spec(args: argparse.Namespace, prompts: Path, sampling: dict[str, Any]) -> Any:
    from verde.protocol.jobs.datasets import file_dataset_root
    from verde.protocol.jobs.spec import JobSpec

    return JobSpec.from_mapping({
        "program": "hf", "kind": "generate",
        "config": {"task": "causal-lm", "hf_config": model_config(args)},
        "dataset": {"name": "file", "location": str(prompts),
                    "root": file_dataset_root(prompts)},
        "generation": {"max_new_tokens": args.max_new_tokens, **sampling}, "seed": SEED,
    })


def plain_model(spec: Any) -> Any:
    """The job's model as plain ``transformers`` builds it from the config, holding the job's
    initial weights (the state's parameters; a tied LM head follows its embedding)."""
    from transformers import AutoModelForCausalLM

    from verde.protocol.jobs.context import JobContext
    from verde.protocol.provider.generation_engine import parameters_of

    ctx = JobContext.from_spec(spec)
    model = AutoModelForCausalLM.from_config(ctx.module.config)  # type: ignore[no-untyped-call]
    loaded = model.load_state_dict(parameters_of(ctx.initial_state()), strict=False)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if loaded.unexpected_keys or set(loaded.missing_keys) - tied:
        raise RuntimeError(f"the job's parameters do not fit the plain model: {loaded}")
    return model.eval()


def transformers_generate(spec: Any, sampling: dict[str, Any], repeats: int,
                          ) -> tuple[float, list[list[int]]]:
    """Best wall time of plain ``model.generate`` on the job's module and initial weights,
    the 8 prompts as one left-padded batch (how ``transformers`` batches prompts), and the
    tokens it generated per prompt."""
    import torch
    from _timing import best_time

    from verde.protocol.jobs.context import JobContext

    model = plain_model(spec)
    prompts = JobContext.from_spec(spec).dataset.fields["input_ids"]
    lengths = spec.generation["prompt_lengths"]
    width = max(lengths)
    ids = torch.zeros((len(lengths), width), dtype=torch.int64)
    mask = torch.zeros((len(lengths), width), dtype=torch.int64)
    for i, n in enumerate(lengths):
        ids[i, width - n:] = torch.from_numpy(prompts[i][:n].copy())
        mask[i, width - n:] = 1
    new = spec.generation["max_new_tokens"]
    options: dict[str, Any] = {"max_new_tokens": new, "min_new_tokens": new,
                               "pad_token_id": 0, "eos_token_id": None}
    if sampling:
        options.update(do_sample=True, top_k=0, **sampling)
    else:
        options.update(do_sample=False)
    generated: list[torch.Tensor] = []

    def run() -> None:
        torch.manual_seed(SEED)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, **options)
        if out.shape[1] != width + new:
            raise RuntimeError(f"transformers generated {out.shape[1] - width} tokens, "
                               f"expected {new}")
        generated[:] = [out[:, width:]]

    seconds = best_time(run, repeats)
    return seconds, generated[0].tolist()


def decode_s(spec: Any, use_cache: bool, repeats: int) -> float:
    """Best wall time of the provider's decoder alone (batched by length, no commitments)."""
    from _timing import best_time

    from verde.protocol.jobs.context import JobContext
    from verde.protocol.provider.generation_engine import decode_prompts, parameters_of

    ctx = JobContext.from_spec(spec)
    params = parameters_of(ctx.initial_state())
    return best_time(lambda: decode_prompts(ctx, params, batch_size=8, use_cache=use_cache),
                     repeats)


def provider_run(spec: Any, repeats: int) -> tuple[float, dict[str, float], Any]:
    """The fastest of ``repeats`` honest ``Provider.submit`` runs end to end (a new provider
    each time): its wall time, its timings and the provider."""
    from proofs import SigningKey
    from verde.protocol.provider.provider import Provider

    best: tuple[float, dict[str, float], Any] | None = None
    for _ in range(max(1, repeats)):
        provider = Provider(SigningKey.from_seed(b"\1" * 32), "honest", generate_batch=8)
        t = time.perf_counter()
        provider.submit(spec)
        wall = time.perf_counter() - t
        if best is None or wall < best[0]:
            best = (wall, dict(provider.jobs[spec.job_id].timings), provider)
    assert best is not None
    return best


def receipt_sizes(spec: Any, provider: Any) -> dict[str, int]:
    """Bytes of the largest per-prompt receipt, as ``verde delegate`` writes it
    (``receipts/prompt-<p>.json``: ``json.dumps(..., sort_keys=True)`` of
    ``verde.protocol.peers.receipt.build_receipt``), each one checked offline with
    ``verify_receipt``; and the parts of the largest."""
    from verde.protocol.peers import LocalPeer
    from verde.protocol.peers.fetch import fetch_generations
    from verde.protocol.peers.receipt import verify_receipt

    generations = fetch_generations(LocalPeer(provider), spec)
    best: dict[str, int] = {}
    for p in sorted(generations.tokens):
        receipt = generations.receipt(spec, p)
        checked = verify_receipt(receipt)
        if checked.prompt != p or len(checked.generated) != spec.generation["max_new_tokens"]:
            raise RuntimeError(f"the receipt of prompt {p} proves prompt {checked.prompt} with "
                               f"{len(checked.generated)} generated tokens")
        size = len(json.dumps(receipt, sort_keys=True).encode())
        if size > best.get("receipt_bytes", -1):
            best = {"receipt_bytes": size, **{
                f"receipt_{part}_bytes": len(json.dumps(receipt[key], sort_keys=True).encode())
                for part, key in (("job", "job"), ("result", "result"),
                                  ("proofs", "entries"), ("tokens", "tokens"))}}
    return best


def token_agreement(record: Any, plain: list[list[int]]) -> float:
    """Fraction of generated positions where verde's token equals plain ``transformers``'
    (a check that both sides ran the same model; not bit-equal kernels, so greedy ties and
    sampling may differ)."""
    from verde.protocol.jobs.generation import tokens_entry

    final = record.states[record.spec.steps]
    lengths = record.spec.generation["prompt_lengths"]
    same = total = 0
    for p, n in enumerate(lengths):
        ours = final[tokens_entry(p)][n:].tolist()
        same += sum(a == b for a, b in zip(ours, plain[p], strict=True))
        total += len(ours)
    return same / total


def dispute(spec: Any, fault: str) -> dict[str, Any]:
    """An honest provider against one cheating with ``fault`` at the middle step, in process."""
    from _dispute import timed_dispute

    from proofs import SigningKey
    from verde.protocol.faults import CheatingProvider, FaultPlan
    from verde.protocol.peers import LocalPeer
    from verde.protocol.provider.provider import Provider

    honest = Provider(SigningKey.from_seed(b"\2" * 32), "honest", generate_batch=8)
    cheater = CheatingProvider(SigningKey.from_seed(b"\3" * 32), "cheater",
                               plan=FaultPlan(fault, step=spec.steps // 2 + 1))
    honest.submit(spec)
    cheater.submit(spec)
    done = timed_dispute(spec, {"a": LocalPeer(cheater), "b": LocalPeer(honest)})
    verdict = done.verdict
    ruling = verdict.ruling or {}
    return {"honest_won": verdict.winner == "b", "dispute_s": round(done.seconds, 3),
            "dispute_rounds": done.stats.rounds, "dispute_bytes": done.stats.bytes_moved,
            "recomputed_op": ruling.get("op"), "disputed_step": ruling.get("step"),
            "verdict": verdict.reason,
            "broken_rules": sorted(str(f.get("code")) if isinstance(f, dict) else str(f)
                                   for f in verdict.to_json()["faults"].values())}


def measure_mode(args: argparse.Namespace, spec: Any, sampling: dict[str, Any],
                 fault: str) -> dict[str, Any]:
    from verde.protocol.graph.admission import admit_job

    admit_job(spec)
    tokens = len(spec.generation["prompt_lengths"]) * spec.generation["max_new_tokens"]
    plain, plain_tokens = transformers_generate(spec, sampling, args.repeats)
    cached = decode_s(spec, True, args.repeats)
    uncached = decode_s(spec, False, args.repeats)
    wall, timings, provider = provider_run(spec, args.repeats)
    record = provider.jobs[spec.job_id]
    decode, commit = timings["step_s"], timings["commit_s"]
    out: dict[str, Any] = {
        "tokens": tokens,
        "tokens_per_s_verde": round(tokens / wall, 1),
        "tokens_per_s_transformers": round(tokens / plain, 1),
        "verde_over_transformers": round(plain / wall, 4),
        "tokens_per_s_decode": round(tokens / cached, 1),
        "decode_over_transformers": round(plain / cached, 4),
        "tokens_per_s_decode_nocache": round(tokens / uncached, 1),
        "nocache_over_transformers": round(plain / uncached, 4),
        "provider_s": round(wall, 3), "provider_decode_s": round(decode, 3),
        "commit_s": round(commit, 4), "commit_share": round(commit / (decode + commit), 4),
        **receipt_sizes(spec, provider),
        **({} if sampling else {"token_agreement_with_transformers": round(
            token_agreement(record, plain_tokens), 4)}),
        "fault": fault, **dispute(spec, fault),
    }
    return out


def check_args(args: argparse.Namespace) -> list[str]:
    """One clear error for impossible sizes or faults; returns the two faults."""
    from verde.protocol.faults.plan import GENERATE_FAULTS

    for name in ("n_embd", "layers", "heads", "vocab", "positions", "max_new_tokens", "repeats",
                 "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.n_embd % args.heads:
        raise SystemExit(f"--n-embd {args.n_embd} must be a multiple of --heads {args.heads}")
    if args.vocab < 4:
        raise SystemExit(f"--vocab must be >= 4 (ids 0..2 are pad, bos, eos), got {args.vocab}")
    if max(PROMPT_LENGTHS) + args.max_new_tokens > args.positions:
        raise SystemExit(f"--positions {args.positions} is below the longest prompt plus "
                         f"--max-new-tokens ({max(PROMPT_LENGTHS) + args.max_new_tokens})")
    faults: list[str] = str(args.faults).split(",")
    if len(faults) != 2 or not set(faults) <= set(GENERATE_FAULTS):
        raise SystemExit(f"--faults: give two generate faults (greedy's, then top-p's) from "
                         f"{', '.join(GENERATE_FAULTS)}; got {args.faults!r}")
    return faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("gpt2", "llama"), default="gpt2")
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--positions", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--faults", default="wrong_sample,quantised_model",
                        help="cheat of the greedy dispute, then of the top-p one")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and numba threads, both sides (the tokens are the same at "
                             "any count; 1 keeps a shared machine's numbers steady)")
    args = parser.parse_args()
    faults = check_args(args)
    import torch

    from repops import _numba

    torch.set_num_threads(args.threads)
    _numba.set_num_threads(args.threads)
    from _machine import machine_info

    result: dict[str, Any] = {"bench": "generate", "model": args.model, "n_embd": args.n_embd,
                              "layers": args.layers, "heads": args.heads, "vocab": args.vocab,
                              "prompt_lengths": list(PROMPT_LENGTHS),
                              "max_new_tokens": args.max_new_tokens,
                              "load_average_1m_at_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as workdir:
        prompts = Path(workdir) / "prompts.npz"
        write_prompts(prompts, args.vocab)
        for mode, sampling, fault in (("greedy", {}, faults[0]), ("top_p", TOP_P, faults[1])):
            spec = job_spec(args, prompts, sampling)
            result[mode] = measure_mode(args, spec, sampling, fault)
            for k, v in result[mode].items():  # as each mode ends: long runs show progress
                print(f"{mode:>7} {k:>28}  {v}", file=sys.stderr, flush=True)
    result.update(machine_info())
    print(json.dumps(result))
    lost = [m for m in ("greedy", "top_p") if not result[m]["honest_won"]]
    if lost:
        raise SystemExit(f"the honest provider lost the {' and '.join(lost)} dispute")


if __name__ == "__main__":
    main()
