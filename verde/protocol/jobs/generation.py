"""Generate jobs: a causal LM decodes every prompt of a dataset, one written step per token.

Why steps: Verde (Arun et al. 2025) settles a disagreement by bisecting over steps and then
over the operators of one step. A generate job makes each (prompt ``p``, position ``t``) one
step, ordered prompt by prompt (step ``s = p * max_new_tokens + t + 1``), so a dispute
descends to the first (prompt, position) whose token or logits differ, then over the
operators of that decode step -- sampling included -- and the arbiter recomputes one.

The written step (:func:`generate_step`), the only definition of the tokens:

1. ``n = prompt_lengths[p] + t`` (the spec lists every prompt's length, so shapes are a
   function of the spec and the arbiter can replay the step on shape-only tensors). At
   ``t == 0`` the prompt's first ``n`` tokens are copied from the batch (dataset sample
   ``p``) into the state's token buffer.
2. The program's forward over exactly the first ``n`` tokens, no padding, no cache
   (``Program.generation_logits``); the logits of the last position, ``[V]`` float32.
3. :func:`sample_token` on those logits and the ``n`` tokens (repetition penalty), drawing
   one uniform from the step's Philox stream (``execution.step_stream(seed, s)``: keyed by
   the spec's seed and (prompt, position), never by batch composition).
4. Once a prompt has emitted a stop token it is *done*: later positions write ``pad_token``
   and commit zero logits (the forward still runs in the written step; a provider may skip
   it, since its results are discarded).

State entries: ``gen/<p>/tokens`` (int64 ``[prompt_lengths[p] + max_new_tokens]``: the
prompt, the generated tokens, ``pad_token`` beyond), ``gen/<p>/done`` (bool ``[]``) and
``gen/logits`` (float32 ``[V]``: the logits step ``s`` sampled from). The final state
therefore commits to every prompt's tokens, and step ``s``'s state to that position's logits.

Equivalences a provider may rely on (tested in ``tests/verde/protocol/test_generate.py``):
repops' kernels compute each output row with a written order that does not depend on how many
rows there are, so the last position's logits are the same bits (a) computed alone or among
other prompts *of the same current length* (batching never pads), and (b) computed from a
key/value cache of the earlier positions (each cached key and value is the same row it is in
the full forward; the attention row has the same ``n`` keys in the same order). Padding a
shorter prompt would change the length of its softmax and attention reductions, so it is not
an equivalence and the engine never does it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from verde.protocol.jobs.errors import JobSpecError

GEN = "gen/"
LOGITS = "gen/logits"
#: Upper bounds that keep a job's step count and buffers within reason.
MAX_NEW_TOKENS = 4096
MAX_STOP_TOKENS = 64
_DEFAULTS: dict[str, Any] = {
    "max_new_tokens": 16, "stop_tokens": [], "pad_token": 0, "temperature": 0.0, "top_k": 0,
    "top_p": 1.0, "repetition_penalty": 1.0,
}
_KEYS = {*_DEFAULTS, "prompt_lengths"}


def tokens_entry(prompt: int) -> str:
    """The state entry holding prompt ``prompt``'s token buffer."""
    return f"{GEN}{prompt}/tokens"


def done_entry(prompt: int) -> str:
    """The state entry saying whether prompt ``prompt`` has emitted a stop token."""
    return f"{GEN}{prompt}/done"


@dataclass(frozen=True)
class Generation:
    """A generate job's decoding settings (the spec's ``generation`` table, normalized)."""

    max_new_tokens: int
    stop_tokens: tuple[int, ...]
    pad_token: int
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    prompt_lengths: tuple[int, ...]

    @classmethod
    def from_spec(cls, table: Mapping[str, Any]) -> Generation:
        return cls(table["max_new_tokens"], tuple(table["stop_tokens"]), table["pad_token"],
                   table["temperature"], table["top_k"], table["top_p"],
                   table["repetition_penalty"], tuple(table["prompt_lengths"]))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_lengths)

    @property
    def steps(self) -> int:
        return self.n_prompts * self.max_new_tokens

    def position(self, step: int) -> tuple[int, int]:
        """(prompt, position) of step ``step`` (1-based)."""
        if not 1 <= step <= self.steps:
            raise ValueError(f"step {step} is outside this generate job's 1..{self.steps}")
        return divmod(step - 1, self.max_new_tokens)

    def step_of(self, prompt: int, position: int) -> int:
        """The step that samples token ``position`` of prompt ``prompt``."""
        if not (0 <= prompt < self.n_prompts and 0 <= position < self.max_new_tokens):
            raise ValueError(f"(prompt {prompt}, position {position}) is outside this job's "
                             f"{self.n_prompts} prompts x {self.max_new_tokens} positions")
        return prompt * self.max_new_tokens + position + 1

    def buffer_length(self, prompt: int) -> int:
        return self.prompt_lengths[prompt] + self.max_new_tokens


def normalize_generation(raw: Any, prompt_lengths: list[int] | None) -> dict[str, Any]:
    """Validate a spec's ``generation`` table and fill in defaults.

    ``prompt_lengths`` are the dataset's (from its ``attention_mask``) when this machine has
    the samples; a spec for other machines must list them (``verde delegate`` fills them in).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise JobSpecError("job spec: generation must be a table (max_new_tokens, stop_tokens, "
                           "temperature, top_k, top_p, repetition_penalty, pad_token)")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise JobSpecError(f"job spec: generation: unknown key(s) {unknown}; known: "
                           f"{sorted(_KEYS)}")
    out = {key: raw.get(key, default) for key, default in _DEFAULTS.items()}
    _int_in(out, "max_new_tokens", 1, MAX_NEW_TOKENS)
    _int_in(out, "pad_token", 0, 2**62)
    _int_in(out, "top_k", 0, 2**31)
    stops = out["stop_tokens"]
    if (not isinstance(stops, list | tuple) or len(stops) > MAX_STOP_TOKENS
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                       for s in stops)):
        raise JobSpecError(f"job spec: generation.stop_tokens must be a list of at most "
                           f"{MAX_STOP_TOKENS} token ids >= 0, got {stops!r}")
    out["stop_tokens"] = sorted(set(stops))
    for key, low, high, low_open in (("temperature", 0.0, 1e6, False),
                                     ("top_p", 0.0, 1.0, True),
                                     ("repetition_penalty", 0.0, 1e6, True)):
        value = out[key]
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value) and value <= high
              and (value > low if low_open else value >= low))
        if not ok:
            bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
            raise JobSpecError(f"job spec: generation.{key} must be a number in {bound}, "
                               f"got {value!r}")
        out[key] = float(value)
    claimed = raw.get("prompt_lengths")
    if claimed is None:
        if prompt_lengths is None:
            raise JobSpecError("job spec: generation.prompt_lengths is missing and the "
                               "dataset's samples are not on this machine to count them")
        claimed = prompt_lengths
    if (not isinstance(claimed, list | tuple) or not claimed
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                       for n in claimed)):
        raise JobSpecError(f"job spec: generation.prompt_lengths must list every prompt's "
                           f"length (integers >= 1), got {claimed!r}")
    if prompt_lengths is not None and list(claimed) != list(prompt_lengths):
        raise JobSpecError(f"job spec: generation.prompt_lengths {list(claimed)[:8]} differ "
                           f"from the dataset's prompts {list(prompt_lengths)[:8]}")
    out["prompt_lengths"] = list(claimed)
    return out


def _int_in(out: dict[str, Any], key: str, low: int, high: int) -> None:
    value = out[key]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise JobSpecError(f"job spec: generation.{key} must be an integer in [{low}, {high}], "
                           f"got {value!r}")


def prompt_lengths(fields: Mapping[str, np.ndarray], prompt_field: str) -> list[int]:
    """Each prompt's length: the count of its ``attention_mask`` ones (which must be a prefix:
    prompts are right-padded), or the whole field without a mask."""
    ids = fields.get(prompt_field)
    if ids is None or ids.ndim != 2:
        raise JobSpecError(f"generate job: the dataset needs a field {prompt_field!r} of token "
                           "ids, one [seq_len] row per prompt")
    mask = fields.get("attention_mask")
    if mask is None:
        return [int(ids.shape[1])] * int(ids.shape[0])
    mask = np.asarray(mask)
    if mask.shape != ids.shape or not np.isin(mask, (0, 1)).all():
        raise JobSpecError("generate job: attention_mask must be 0/1 and shaped like "
                           f"{prompt_field}")
    lengths = mask.sum(axis=1).astype(np.int64)
    expected = np.arange(ids.shape[1])[None, :] < lengths[:, None]
    if not np.array_equal(mask.astype(bool), expected):
        bad = int(np.flatnonzero((mask.astype(bool) != expected).any(axis=1))[0])
        raise JobSpecError(f"generate job: prompt {bad}'s attention_mask is not a run of ones "
                           "then zeros (prompts are right-padded)")
    if (lengths < 1).any():
        raise JobSpecError(f"generate job: prompt {int(np.flatnonzero(lengths < 1)[0])} is "
                           "empty")
    return [int(n) for n in lengths]


# --- the written step ------------------------------------------------------------------------


def sample_token(logits: torch.Tensor, context: torch.Tensor, settings: Generation,
                 ) -> torch.Tensor:
    """The next token (int64 ``[]``) from one position's ``logits`` (float32 ``[V]``) and the
    tokens so far ``context`` (int64 ``[n]``), as aten ops (each one a disputable node).

    The written order (repops/spec: sort is stable, cumsum sequential, softmax and argmax as
    specified there):

    1. repetition penalty ``r`` (Keskar et al. 2019, CTRL; HF's rule): for every token id in
       ``context``, ``z = z / r`` if ``z > 0`` else ``z * r``;
    2. greedy (temperature 0): the first index of the maximum;
    3. otherwise ``z = z / temperature``; sort descending (stable: ties keep id order);
       top-k keeps the first ``k`` (0: all); ``q = softmax`` of the kept (others ``-inf``);
       top-p (Holtzman et al. 2020) keeps sorted position ``j`` while the mass before it,
       ``cumsum(q)[j - 1]``, is below ``top_p`` (position 0 always);
    4. ``c = cumsum`` of the kept ``q``; the token is the sorted position of the first
       ``c[j] > u * c[V-1]`` (``u`` uniform in [0, 1) from the step's stream), at most the
       last kept one.
    """
    z = logits
    vocab = z.shape[0]
    if settings.repetition_penalty != 1.0:
        r = settings.repetition_penalty
        seen = torch.zeros(vocab, dtype=torch.bool, device=z.device).scatter(0, context, True)
        z = torch.where(seen, torch.where(z > 0, z / r, z * r), z)
    if settings.greedy:
        return torch.argmax(z)
    z = z / settings.temperature
    ordered, order = torch.sort(z, descending=True, stable=True)
    keep = torch.ones(vocab, dtype=torch.bool, device=z.device)
    if settings.top_k:
        keep = torch.arange(vocab, device=z.device) < settings.top_k
    q = torch.softmax(torch.where(keep, ordered, -math.inf), dim=0)
    if settings.top_p < 1.0:
        before = torch.cat([torch.zeros(1, dtype=q.dtype, device=z.device),
                            torch.cumsum(q, dim=0)[:-1]])
        keep = keep & (before < settings.top_p)
    c = torch.cumsum(torch.where(keep, q, 0.0), dim=0)
    u = torch.rand((), dtype=torch.float32, device=z.device)
    first = (c <= u * c[-1]).sum()
    index = torch.minimum(first, keep.sum() - 1)
    return order.gather(0, index.reshape(1))[0]


def write_token(tokens: torch.Tensor, n: int, token: torch.Tensor, done: torch.Tensor,
                settings: Generation) -> tuple[torch.Tensor, torch.Tensor]:
    """The buffer with the token (or ``pad_token`` once done) at index ``n``, and the new done
    flag (a stop token ends the prompt; it is kept in the output)."""
    written = torch.where(done, torch.full_like(token, settings.pad_token), token)
    new_tokens = torch.cat([tokens[:n], written.reshape(1), tokens[n + 1:]])
    new_done = done
    for stop in settings.stop_tokens:  # comparisons with the spec's ids: no captured tensor
        new_done = new_done | (written == stop)
    return new_tokens, new_done


def committed_logits(logits: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """What ``gen/logits`` holds: the sampled position's logits, zeros once the prompt is done."""
    return torch.where(done, torch.zeros_like(logits), logits)


def decode_position(logits: torch.Tensor, tokens: torch.Tensor, n: int, done: torch.Tensor,
                    settings: Generation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One position of a prompt from its last-position ``logits``: the token buffer with the
    sampled token (or pad) at index ``n``, the new done flag and the logits to commit. Runs
    inside the step's execution context (the sampler draws from its stream)."""
    token = sample_token(logits, tokens[:n], settings)
    new_tokens, new_done = write_token(tokens, n, token, done, settings)
    return new_tokens, new_done, committed_logits(logits, done)
