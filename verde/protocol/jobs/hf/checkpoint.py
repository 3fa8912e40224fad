"""HF checkpoint names to an ``hf`` program's parameters.

A checkpoint saved from one head (``BertModel``, ``BertForMaskedLM``, a sentence-transformers
encoder) is often loaded into another (``BertForSequenceClassification``): the base model's
tensors are stored with or without the base-model prefix (``bert.``), and old checkpoints
name LayerNorm parameters ``gamma``/``beta``. :func:`match_checkpoint` maps every parameter of
the program's model to the checkpoint tensor that holds it, reports the parameters the
checkpoint lacks (a new head: they keep their seeded initialisation, a function of the job
seed) and the tensors nothing uses, and refuses shape mismatches by name. Values are converted
to float32 (exact for float16/bfloat16 checkpoints).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from verde.protocol.jobs.errors import JobSpecError

_LEGACY = {".gamma": ".weight", ".beta": ".bias"}


@dataclass
class CheckpointMatch:
    """Parameters found in a checkpoint (name -> float32 tensor), and what did not match."""

    found: dict[str, torch.Tensor] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def _normalized(name: str) -> str:
    for old, new in _LEGACY.items():
        if name.endswith(old):
            return name[: -len(old)] + new
    return name


def _candidates(name: str, prefix: str) -> list[str]:
    """Checkpoint names that may hold parameter ``name``, most specific first."""
    out = [name]
    if prefix and name.startswith(prefix + "."):
        out.append(name[len(prefix) + 1:])
    elif prefix:
        out.append(f"{prefix}.{name}")
    return out


def match_checkpoint(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> CheckpointMatch:
    """Map ``model``'s parameters to ``tensors`` (a checkpoint, names as saved)."""
    prefix = str(getattr(model, "base_model_prefix", "") or "")
    by_name = {_normalized(k): k for k in tensors}
    match = CheckpointMatch()
    used: set[str] = set()
    for name, param in model.named_parameters():
        source = next((by_name[c] for c in _candidates(name, prefix) if c in by_name), None)
        if source is None:
            match.missing.append(name)
            continue
        value = tensors[source]
        if tuple(value.shape) != tuple(param.shape):
            raise JobSpecError(f"program hf: checkpoint tensor {source} is {list(value.shape)}, "
                               f"but parameter {name} is {list(param.shape)}")
        if not value.dtype.is_floating_point:
            raise JobSpecError(f"program hf: checkpoint tensor {source} is {value.dtype}, not a "
                               "floating-point tensor")
        match.found[name] = value.detach().to(torch.float32).contiguous()
        used.add(source)
    tied = _tied_names(model)
    match.unused = sorted(k for k in tensors if k not in used and _normalized(k) not in tied)
    return match


def _tied_names(model: nn.Module) -> set[str]:
    """Names of parameters that share a tensor with an earlier one (tied embeddings): a
    checkpoint that saves them too is not "unused"."""
    named = set(dict(model.named_parameters(remove_duplicate=False)))
    return named - set(dict(model.named_parameters()))
