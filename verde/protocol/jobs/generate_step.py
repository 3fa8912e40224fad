"""The written decode step of a generate job and its state entries, for ``JobContext``.

The algorithm and why it is disputable are in :mod:`verde.protocol.jobs.generation`; this
module puts it into the shape every job kind has in ``verde.protocol.jobs.context``: the state
entries (their structure and state 0) and the pure step ``state s-1 -> state s``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.generation import (
    LOGITS,
    Generation,
    decode_position,
    done_entry,
    tokens_entry,
)

if TYPE_CHECKING:
    from torch import nn

    from verde.protocol.jobs.datasets import Dataset
    from verde.protocol.jobs.programs import Program
    from verde.protocol.jobs.spec import JobSpec


def generate_structure(g: Generation, vocab: int) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Name -> (shape, dtype) of a generate job's own state entries."""
    out: dict[str, tuple[tuple[int, ...], Any]] = {}
    for prompt in range(g.n_prompts):
        out[tokens_entry(prompt)] = ((g.buffer_length(prompt),), torch.int64)
        out[done_entry(prompt)] = ((), torch.bool)
    out[LOGITS] = ((vocab,), torch.float32)
    return out


def initial_generate_entries(g: Generation, vocab: int) -> dict[str, torch.Tensor]:
    """State 0's generate entries: pad-filled buffers (the prompt is copied in by its first
    step, from the batch), nothing done, zero logits."""
    out: dict[str, torch.Tensor] = {}
    for prompt in range(g.n_prompts):
        out[tokens_entry(prompt)] = torch.full((g.buffer_length(prompt),), g.pad_token,
                                               dtype=torch.int64)
        out[done_entry(prompt)] = torch.zeros((), dtype=torch.bool)
    out[LOGITS] = torch.zeros(vocab, dtype=torch.float32)
    return out


def generate_step(g: Generation, state: Mapping[str, torch.Tensor],
                  fields: Mapping[str, torch.Tensor], step: int, *, prompt_field: str,
                  last_logits: Callable[[torch.Tensor], torch.Tensor],
                  ) -> dict[str, torch.Tensor]:
    """State ``step`` of a generate job from state ``step - 1`` (without its ``rng`` entry, which
    callers add) -- the written step of :mod:`verde.protocol.jobs.generation`. ``last_logits``
    is the program's forward at the step's parameters (ids ``[1, n]`` -> logits ``[1, V]``)."""
    prompt, position = g.position(step)
    n = g.prompt_lengths[prompt] + position
    tokens, done = state[tokens_entry(prompt)], state[done_entry(prompt)]
    if position == 0:
        tokens = torch.cat([fields[prompt_field][0, :n], tokens[n:]])
    logits = last_logits(tokens[:n].unsqueeze(0))[0]
    with torch.no_grad():
        new_tokens, new_done, new_logits = decode_position(logits, tokens, n, done, g)
    new_state = dict(state)
    new_state[tokens_entry(prompt)] = new_tokens
    new_state[done_entry(prompt)] = new_done
    new_state[LOGITS] = new_logits
    return new_state


def check_pad_token(spec: JobSpec, vocab: int) -> None:
    """A done prompt's written step still runs the model over its pads: the pad token must be
    one the model can embed (checked at admission, where the vocabulary is probed)."""
    if spec.generation["pad_token"] >= vocab:
        raise JobSpecError(f"job spec: generation.pad_token {spec.generation['pad_token']} is "
                           f"outside the model's vocabulary of {vocab}")


def check_generate(spec: JobSpec, program: Program, module: nn.Module, dataset: Dataset,
                   ) -> None:
    """Refuse a generate job its program, model or dataset cannot run (``JobSpecError``)."""
    lengths = spec.generation["prompt_lengths"]
    program.check_generation(spec.config, module,
                             max(lengths) + spec.generation["max_new_tokens"] - 1)
    if len(lengths) != dataset.n_samples:
        raise JobSpecError(f"job spec: generation.prompt_lengths lists {len(lengths)} prompts, "
                           f"the dataset has {dataset.n_samples}")
    shape, dtype = dataset.sample_shapes().get(program.prompt_field, ((), torch.float32))
    if len(shape) != 1 or dtype != torch.int64:
        raise JobSpecError(f"program {program.name}: a generate job reads prompts from field "
                           f"{program.prompt_field!r}, int64 [seq_len] per prompt; the dataset "
                           f"has {dtype} {list(shape)}")
    if max(lengths) > shape[0]:
        raise JobSpecError(f"job spec: generation.prompt_lengths (up to {max(lengths)}) exceed "
                           f"the dataset's {program.prompt_field} width {shape[0]}")
