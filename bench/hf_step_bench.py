"""A Hugging Face training step under repops against the same step in plain PyTorch.

What a user who brings their own model pays for bit-reproducibility: a LLaMA-family decoder
(RMSNorm, rotary positions, SwiGLU) and a GPT-2 decoder (LayerNorm, tanh-GELU), both 4 layers,
width 256, 4 heads, vocabulary 512 (random init from configs built in code; nothing is
downloaded), one forward and backward pass of the causal-LM loss on a batch of generated token
ids. Dropout is off, so both sides run the same arithmetic. The two step functions are timed
interleaved, best of ``--runs``, at torch's thread count; ``<model>_step_ratio`` is repops'
time over torch's (lower is better, 1 = no price). The top ops of one repops step go to stderr.

Usage: python bench/hf_step_bench.py [--models llama,gpt2] [--batch 8] [--seq 128] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import repops
from repops import _numba

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_info
from repops_bench import best_times, timed_ops

WIDTH, LAYERS, HEADS, VOCAB = 256, 4, 4, 512


def build(name: str) -> torch.nn.Module:
    import transformers

    torch.manual_seed(0)
    if name == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=688,
            num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
            max_position_embeddings=1024))
    if name == "gpt2":
        return transformers.GPT2LMHeadModel(transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS, n_positions=1024,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    raise ValueError(f"--models: unknown model {name!r} (llama, gpt2)")


def step_fn(model: torch.nn.Module, ids: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()

    return step


def top_ops(step: Callable[[], None], n: int = 8) -> None:
    """One repops step with each op timed; the ``n`` costliest op names go to stderr."""
    with timed_ops() as times, repops.reproducible():
        step()
    for name, dt in sorted(times.per_op.items(), key=lambda kv: -kv[1])[:n]:
        print(f"  {name:60s} {dt * 1e3:8.1f} ms", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="llama,gpt2")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    _numba.set_num_threads(torch.get_num_threads())
    ids = torch.randint(0, VOCAB, (args.batch, args.seq),
                        generator=torch.Generator().manual_seed(1))
    out: dict[str, Any] = {"bench": "hf_step", **machine_info(), "batch": args.batch,
                           "seq": args.seq}
    for name in args.models.split(","):
        model = build(name)
        model.train()
        step = step_fn(model, ids)

        def in_mode(step: Callable[[], None] = step) -> None:
            with repops.reproducible():
                step()

        t_torch, t_repops = best_times([step, in_mode], args.runs)
        out[f"{name}_torch_step_ms"] = round(t_torch * 1e3, 2)
        out[f"{name}_repops_step_ms"] = round(t_repops * 1e3, 2)
        out[f"{name}_step_ratio"] = round(t_repops / t_torch, 3)
        print(f"{name}: torch {t_torch * 1e3:.1f} ms, repops {t_repops * 1e3:.1f} ms, "
              f"ratio {t_repops / t_torch:.2f}; top ops of one repops step:", file=sys.stderr)
        top_ops(step)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
