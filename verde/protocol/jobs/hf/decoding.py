"""KV-cached decoding of a Hugging Face causal LM, bit for bit the written generate step.

Why it may differ in method and not in bits: the written step (``verde.protocol.jobs.
generation``) runs the model over all ``n`` tokens for every position. With a key/value cache
each position runs one query row: every linear layer, norm and rotary embedding is computed
per row in repops' written order, so a cached key or value is the same row as in the full
forward; the attention row of the new query has the same ``n`` keys in the same order, and
its mask entries are the same ``+0.0`` the full forward adds on its last row. The logits of
the last position are therefore the same bits (tested in
``tests/verde/protocol/test_generate.py`` against the written step).

HF's own mask builder is bypassed the way the adapter bypasses it for the written step: an
explicit additive 4-D mask (causal for the prefill, all zeros for one new query), which
``transformers`` uses as given.

Only architectures whose cache is a plain append of every position's keys and values are
decoded this way (:data:`CACHED_MODEL_TYPES`, each tested against the written step): a model
whose cache drops or transforms entries (a sliding window, a linear-attention state) would give
other bits than the written step, and an honest provider must never commit those. Other
models are decoded by recomputing each prefix, batched, which is the written step itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from verde.protocol.jobs.hf import adapter

#: Model types decoded with a key/value cache (``tests/verde/protocol/test_generate.py`` checks
#: each against the written step); any other model recomputes its prefixes.
CACHED_MODEL_TYPES = frozenset({"gpt2", "llama"})


def can_cache(module: nn.Module) -> bool:
    """Whether ``module`` is decoded with a key/value cache (see :data:`CACHED_MODEL_TYPES`)."""
    config = getattr(module, "config", None)
    return getattr(config, "model_type", None) in CACHED_MODEL_TYPES and not getattr(
        config, "sliding_window", None)


class CachedDecoder:
    """Prefill a batch of equal-length prompts, then decode one position at a time."""

    def __init__(self, module: nn.Module, params: Mapping[str, torch.Tensor]) -> None:
        from transformers import DynamicCache

        self.module = module
        self.params = dict(params)
        self.accepts = adapter.adapter_info(module).accepts
        if not can_cache(module):
            raise ValueError(f"model type {getattr(module.config, 'model_type', '?')} is not "
                             f"decoded with a cache (only {sorted(CACHED_MODEL_TYPES)})")
        # No config: every layer a plain full cache (a config may ask for window layers).
        self.cache = DynamicCache()
        self.length = 0

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, V]`` of the last prompt position; fills the cache with every position."""
        b, n = ids.shape
        mask = adapter.additive_mask(torch.ones((b, n), dtype=torch.int64), causal=True)
        positions = torch.arange(n).unsqueeze(0).expand(b, n)
        self.length = n
        return self._run(ids, mask, positions, torch.arange(n))

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, V]`` after appending one token per row (``ids`` int64 ``[B]``)."""
        b = ids.shape[0]
        n = self.length + 1
        mask = torch.zeros((b, 1, 1, n), dtype=torch.float32)
        positions = torch.full((b, 1), n - 1, dtype=torch.int64)
        self.length = n
        return self._run(ids.reshape(b, 1), mask, positions, torch.tensor([n - 1]))

    def _run(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
             cache_position: torch.Tensor) -> torch.Tensor:
        # transformers 5.x names the cache argument ``cache`` (``past_key_values`` before).
        cache_arg = "cache" if "cache" in self.accepts else "past_key_values"
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask,
                                  cache_arg: self.cache, "use_cache": True, "return_dict": True}
        if "position_ids" in self.accepts:
            kwargs["position_ids"] = positions
        if "cache_position" in self.accepts:
            kwargs["cache_position"] = cache_position
        with torch.no_grad():
            out = torch.func.functional_call(self.module, self.params, (), kwargs)
        logits: torch.Tensor = out.logits[:, -1]
        return logits

    def tamper(self, row: int, layer: int = 0) -> None:
        """Alter the cached keys of ``row`` at the last position (fault injection: a provider
        whose cache entries were tampered with, ``verde.protocol.faults``)."""
        keys: torch.Tensor | None = getattr(self.cache.layers[layer], "keys", None)
        if keys is None:
            raise ValueError(f"cache layer {layer} holds no keys yet")
        keys[row, :, -1] = keys[row, :, -1] + 1.0
