"""Small generate jobs for the tests: tiny GPT-2, Llama and built-in gpt configs, and a prompts
dataset written to tmp (8 right-padded prompts of different lengths, some of equal length so a
provider batches them)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from proofs.state import StateCommitment
from verde.protocol.graph.execution import run_step
from verde.protocol.jobs.context import JobContext
from verde.protocol.jobs.datasets import file_dataset_root
from verde.protocol.jobs.generation import tokens_entry
from verde.protocol.jobs.spec import JobSpec
from verde.protocol.provider.generation_engine import (
    decode_prompts,
    generation_states,
    parameters_of,
)

VOCAB = 40
#: Lengths of the 8 prompts: three of 5 and two of 7 are decoded together.
PROMPT_LENGTHS = (3, 7, 5, 5, 2, 5, 7, 4)
WIDTH = max(PROMPT_LENGTHS)
GREEDY: dict[str, Any] = {"max_new_tokens": 4}
TOP_P: dict[str, Any] = {"max_new_tokens": 4, "temperature": 0.9, "top_p": 0.9}
#: Every sampling knob at once (and stop tokens, so some prompts end early).
FULL: dict[str, Any] = {"max_new_tokens": 4, "temperature": 0.8, "top_k": 20, "top_p": 0.9,
                        "repetition_penalty": 1.3, "stop_tokens": [6, 35], "pad_token": 39}

HF_CONFIGS: dict[str, dict[str, Any]] = {
    "gpt2": {"model_type": "gpt2", "vocab_size": VOCAB, "n_embd": 16, "n_layer": 2, "n_head": 2,
             "n_positions": 16, "bos_token_id": 1, "eos_token_id": 2},
    # grouped-query attention: 4 query heads share 2 key/value heads
    "llama": {"model_type": "llama", "vocab_size": VOCAB, "hidden_size": 16,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 32, "max_position_embeddings": 16, "bos_token_id": 1,
              "eos_token_id": 2},
    # a sliding window: HF's own cache would drop keys the written step attends
    "mistral": {"model_type": "mistral", "vocab_size": VOCAB, "hidden_size": 16,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 32, "max_position_embeddings": 16, "sliding_window": 4,
                "bos_token_id": 1, "eos_token_id": 2},
}
GPT_CONFIG: dict[str, Any] = {"vocab": VOCAB, "d_model": 16, "layers": 1, "heads": 2,
                              "context": 12}


def prompt_arrays(field: str = "input_ids", lengths: tuple[int, ...] = PROMPT_LENGTHS,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids in [1, VOCAB), right-padded with 0, and their attention mask."""
    width = max(lengths)
    rng = np.random.default_rng(seed)
    mask = (np.arange(width)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    ids = rng.integers(1, VOCAB, size=(len(lengths), width)).astype(np.int64) * mask
    return {field: ids, "attention_mask": mask}


def write_prompts(tmp: Path, arrays: Mapping[str, np.ndarray], name: str = "prompts",
                  ) -> dict[str, Any]:
    """``arrays`` saved as ``tmp/<name>.npz``; the file dataset spec naming it."""
    location = tmp / f"{name}.npz"
    np.savez(location, **dict(arrays))  # type: ignore[arg-type]
    return {"name": "file", "location": str(location), "root": file_dataset_root(location)}


def generate_doc(tmp: Path, arch: str, generation: Mapping[str, Any] | None = None,
                 **changes: Any) -> dict[str, Any]:
    """A generate job document: ``arch`` is ``gpt2`` or ``llama`` (the ``hf`` program) or
    ``gpt`` (the built-in program, prompts in field ``tokens``)."""
    if arch == "gpt":
        program, config, field = "gpt", dict(GPT_CONFIG), "tokens"
    else:
        program = "hf"
        config = {"task": "causal-lm", "hf_config": dict(HF_CONFIGS[arch])}
        field = "input_ids"
    doc: dict[str, Any] = {
        "program": program, "kind": "generate", "config": config,
        "dataset": write_prompts(tmp, prompt_arrays(field), f"prompts-{field}"),
        "generation": dict(GREEDY if generation is None else generation), "seed": 5,
    }
    doc.update(changes)
    return doc


def generate_spec(tmp: Path, arch: str, generation: Mapping[str, Any] | None = None,
                  **changes: Any) -> JobSpec:
    return JobSpec.from_mapping(generate_doc(tmp, arch, generation, **changes))


def written_roots(ctx: JobContext, state: dict[str, torch.Tensor] | None = None,
                  ) -> tuple[list[bytes], dict[str, torch.Tensor]]:
    """The roots of the written steps 1..T (``run_step``) from ``state`` (default: the seeded
    state 0), and the final state."""
    state = ctx.initial_state() if state is None else state
    roots = []
    for step in range(1, ctx.spec.steps + 1):
        state = run_step(ctx, state, step)
        roots.append(StateCommitment.from_tensors(state).root)
    return roots, state


def fast_path_roots(ctx: JobContext, *, batch_size: int, use_cache: bool,
                    cache_hook: Any = None, state: dict[str, torch.Tensor] | None = None,
                    ) -> list[bytes]:
    """The state roots of steps 1..T a provider commits from its batched (cached) decode of
    ``state`` (default: the seeded state 0)."""
    state = ctx.initial_state() if state is None else state
    decoded = decode_prompts(ctx, parameters_of(state), batch_size=batch_size,
                             use_cache=use_cache, cache_hook=cache_hook)
    return [StateCommitment.from_tensors(s).root for _, s in generation_states(ctx, state,
                                                                                 decoded)]


def final_tokens(ctx: JobContext, *, batch_size: int = 8, use_cache: bool = True,
                 ) -> dict[str, Any]:
    """The fast path's final state root and every prompt's token buffer (JSON-able)."""
    state = ctx.initial_state()
    decoded = decode_prompts(ctx, parameters_of(state), batch_size=batch_size,
                             use_cache=use_cache)
    final: dict[str, torch.Tensor] = state
    for _, after in generation_states(ctx, state, decoded):
        final = after
    return {"root": StateCommitment.from_tensors(final).root.hex(),
            "tokens": [final[tokens_entry(p)].tolist()
                       for p in range(ctx.generation.n_prompts)]}


def final_tokens_of_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`final_tokens` of a job document (what the generic-CPU subprocess prints)."""
    return final_tokens(JobContext.from_spec(JobSpec.from_mapping(doc)))
