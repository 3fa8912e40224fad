"""The seeded HF property campaign: random small Hugging Face configs x settings x faults.

Each case (``verde.protocol.faults.hf_campaign``) builds a small random BERT-style encoder,
GPT-2, Llama-style decoder (grouped-query attention, RMSNorm, rotary, SwiGLU) or ViT in code
(random init, nothing downloaded), picks dropout, padding masks, the attention implementation
the config requests, the optimizer and training, inference or (causal LMs) generation with
random decoding settings, and pairs an honest provider with one following a random fault
plan. Whenever their results differ a dispute runs; the property is that the honest provider
never loses. The alternative it is measured against is the
obvious one: ``honest_losses`` must be 0 out of ``disputed``.

Prints ONE JSON line (counts by architecture, verdict reason and fault; seconds; the machine)
and a table on stderr.

Usage: python bench/hf_campaign_bench.py [--cases 200] [--start 0]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--start", type=int, default=0, help="first seed")
    args = parser.parse_args()

    from repops import _numba

    _numba.set_num_threads(1)
    from verde.errors import VerdeInputError
    from verde.protocol.faults.hf_campaign import make_case, run_case

    counts: dict[str, collections.Counter[str]] = {
        "arch": collections.Counter(), "reason": collections.Counter(),
        "fault": collections.Counter(), "task": collections.Counter(),
        "kind": collections.Counter()}
    losses: list[int] = []
    errors: list[tuple[int, str]] = []
    refused: list[tuple[int, str]] = []
    disputed = settled_without = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        for seed in range(args.start, args.start + args.cases):
            case = make_case(seed, workdir)
            try:
                outcome = run_case(case)
            except AssertionError as exc:
                losses.append(seed)
                print(f"seed {seed}: {exc}", file=sys.stderr)
                continue
            except VerdeInputError as exc:  # admission refused the job: nobody computed
                refused.append((seed, str(exc)[:200]))
                continue
            except Exception as exc:  # a crash is a failed case too, never skipped silently
                errors.append((seed, f"{type(exc).__name__}: {str(exc)[:200]}"))
                print(f"seed {seed}: {errors[-1][1]}", file=sys.stderr)
                continue
            print(f"seed {seed}: {outcome}", file=sys.stderr, flush=True)
            counts["arch"][outcome["arch"]] += 1
            counts["task"][outcome["task"]] += 1
            counts["kind"][outcome["kind"]] += 1
            counts["fault"][outcome["fault"]] += 1
            if outcome["disputed"]:
                disputed += 1
                counts["reason"][outcome["reason"]] += 1
            else:
                settled_without += 1
    from _machine import machine_info

    result = {
        "bench": "hf_campaign",
        "cases": args.cases,
        "first_seed": args.start,
        "disputed": disputed,
        "no_effect": settled_without,
        "refused_at_admission": len(refused),
        "honest_losses": len(losses),
        "losing_seeds": losses,
        "errors": len(errors),
        "error_seeds": [seed for seed, _ in errors],
        "by_arch": dict(counts["arch"]),
        "by_task": dict(counts["task"]),
        "by_kind": dict(counts["kind"]),
        "by_fault": dict(counts["fault"]),
        "by_reason": dict(counts["reason"]),
        "seconds": round(time.perf_counter() - t0, 1),
        **machine_info(),
    }
    print(json.dumps(result))
    for k, v in result.items():
        print(f"{k:>22}  {v}", file=sys.stderr)
    for seed, reason in refused:
        print(f"refused seed {seed}: {reason}", file=sys.stderr)


if __name__ == "__main__":
    main()
