"""A provider's fast path through a generate job: prompts batched, a key/value cache, and the
states the written steps would commit, built from the decoded tokens and logits.

Why a second path: the written step (``verde.protocol.jobs.generation``) recomputes a prompt's
whole prefix for every position and decodes one prompt at a time -- the definition, and what a
dispute replays for one step. A provider serving a job decodes prompts of the same length
together (``batch_size`` rows at most, never padded) and, for Hugging Face models, reuses a
key/value cache (``verde.protocol.jobs.hf.decoding``). Both are equivalences repops' row-wise
written orders make exact, tested against the written steps; the provider's commitments are
then the written steps' states, whatever batch size or cache it used. The cache is used only
for architectures it is tested on (``hf.decoding.CACHED_MODEL_TYPES``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from verde.protocol.graph.execution import execution_context, step_stream
from verde.protocol.graph.nodes import RNG_ENTRY
from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.jobs.generation import (
    LOGITS,
    decode_position,
    done_entry,
    tokens_entry,
    write_token,
)

if TYPE_CHECKING:
    from verde.protocol.jobs.hf.decoding import CachedDecoder

#: Called with (decoder, batch row, prompt, position) before each decode position (fault
#: injection: ``verde.protocol.faults`` tampers with cache entries through it).
CacheHook = Callable[[object, int, int, int], None]


@dataclass
class DecodedPrompt:
    """What the written steps of one prompt commit: its buffer, done flag and logits after
    every position."""

    tokens: list[torch.Tensor] = field(default_factory=list)
    done: list[torch.Tensor] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)


def length_batches(ctx: JobContext, batch_size: int) -> list[list[int]]:
    """Prompts grouped by length (never padded), at most ``batch_size`` per batch, in
    prompt order within a length; batches in the order of their first prompt (so the states,
    which go prompt by prompt, can be committed while later batches decode)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    lengths = ctx.generation.prompt_lengths
    by_length: dict[int, list[int]] = {}
    for p in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        by_length.setdefault(lengths[p], []).append(p)
    batches = [group[i:i + batch_size] for group in by_length.values()
               for i in range(0, len(group), batch_size)]
    return sorted(batches, key=lambda rows: rows[0])


def decode_prompts(ctx: JobContext, params: Mapping[str, torch.Tensor], *, batch_size: int = 8,
                   use_cache: bool = True, cache_hook: CacheHook | None = None,
                   ) -> dict[int, DecodedPrompt]:
    """Decode every prompt of a generate job from ``params`` (keyed by parameter name)."""
    return dict(decode_batches(ctx, params, batch_size=batch_size, use_cache=use_cache,
                               cache_hook=cache_hook))


def decode_batches(ctx: JobContext, params: Mapping[str, torch.Tensor], *, batch_size: int = 8,
                   use_cache: bool = True, cache_hook: CacheHook | None = None,
                   ) -> Iterator[tuple[int, DecodedPrompt]]:
    """(prompt, its decoded positions), a batch of prompts at a time (:func:`length_batches`
    order): what :func:`generation_states` consumes as it goes, so a provider holds the
    logits of the batches not yet committed, not of the whole job."""
    if ctx.spec.backend != "repops":
        raise ValueError(f"job {ctx.spec.job_id[:16]} runs on backend {ctx.spec.backend!r}: "
                         "batched and cached decoding equal the written steps only under "
                         "repops (vendor kernels may change with the batch); run its steps")
    g = ctx.generation
    prompts = ctx.dataset.fields[ctx.program.prompt_field]
    pad = torch.tensor(g.pad_token, dtype=torch.int64)
    zeros = torch.zeros(ctx.vocab_size(), dtype=torch.float32)
    for rows in length_batches(ctx, batch_size):
        n0 = g.prompt_lengths[rows[0]]
        buffers = []
        for p in rows:
            buf = torch.full((g.buffer_length(p),), g.pad_token, dtype=torch.int64)
            buf[:n0] = torch.from_numpy(prompts[p][:n0].copy())
            buffers.append(buf)
        done = [torch.zeros((), dtype=torch.bool) for _ in rows]
        results = {p: DecodedPrompt() for p in rows}
        forward = _Forward(ctx, params, use_cache)
        for t in range(g.max_new_tokens):
            n = n0 + t
            if all(bool(d) for d in done):
                logits_rows = None  # every row is done: the written step's results are discarded
            else:
                if cache_hook is not None and t > 0:
                    for i, p in enumerate(rows):
                        cache_hook(forward.decoder, i, p, t)
                ids = torch.stack([b[:n] for b in buffers])
                logits_rows = forward(ids)
            for i, p in enumerate(rows):
                if bool(done[i]) or logits_rows is None:  # pad, zero logits: no draw needed
                    buffers[i], done[i] = write_token(buffers[i], n, pad, done[i], g)
                    committed = zeros
                else:
                    stream = step_stream(ctx.spec.seed, g.step_of(p, t))
                    with execution_context(ctx.spec.backend, stream=stream):
                        buffers[i], done[i], committed = decode_position(
                            logits_rows[i], buffers[i], n, done[i], g)
                results[p].tokens.append(buffers[i])
                results[p].done.append(done[i])
                results[p].logits.append(committed)
        yield from results.items()


class _Forward:
    """Last-position logits of a batch of equal-length sequences, cached or recomputed."""

    def __init__(self, ctx: JobContext, params: Mapping[str, torch.Tensor],
                 use_cache: bool) -> None:
        self.ctx = ctx
        self.params = dict(params)
        self.decoder: CachedDecoder | None = None
        self.started = False
        if use_cache and ctx.spec.program == "hf":
            from verde.protocol.jobs.hf.decoding import CachedDecoder, can_cache

            if not can_cache(ctx.module):
                return  # recompute the prefixes: the written step itself, batched
            probe = {ctx.program.prompt_field: torch.zeros((1, 1), dtype=torch.int64)}
            own = dict(params)
            own.update(ctx.program.step_buffers(ctx.module, probe))
            self.decoder = CachedDecoder(ctx.module, own)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        with execution_context(self.ctx.spec.backend):
            if self.decoder is None:
                return self.ctx.generation_logits(self.params, ids)
            with self.ctx.step_lock:
                if not self.started:
                    self.started = True
                    return self.decoder.prefill(ids)
                return self.decoder.step(ids[:, -1])


def generation_states(ctx: JobContext, state: Mapping[str, torch.Tensor],
                      decoded: Mapping[int, DecodedPrompt] | Iterable[tuple[int, DecodedPrompt]],
                      ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """(step, state) for every step, in order, from state 0 and the decoded prompts (a mapping,
    or pairs as :func:`decode_batches` yields them, consumed as far as the next prompt needs):
    the states the written steps compute (each shares every unchanged tensor with the
    previous). A prompt's decoded positions are let go once its states are out."""
    g = ctx.generation
    source = iter(decoded.items() if isinstance(decoded, Mapping) else decoded)
    pending: dict[int, DecodedPrompt] = {}
    current = dict(state)
    for p in range(g.n_prompts):
        while p not in pending:
            try:
                got, result = next(source)
            except StopIteration:
                raise ValueError(f"generation_states: prompt {p} was never decoded") from None
            pending[got] = result
        mine = pending.pop(p)
        for t in range(g.max_new_tokens):
            step = g.step_of(p, t)
            current = dict(current)
            current[tokens_entry(p)] = mine.tokens[t]
            current[done_entry(p)] = mine.done[t]
            current[LOGITS] = mine.logits[t]
            current[RNG_ENTRY] = ctx.rng_state(step)
            yield step, current


def parameters_of(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The parameters in a state, keyed by parameter name."""
    return {k[len(PARAM):]: v for k, v in state.items() if k.startswith(PARAM)}
