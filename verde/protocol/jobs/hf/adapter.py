"""What makes a Hugging Face forward pass a disputable verde step, without surgery on the model.

An arbiter derives a step's graph by replaying it on shape-only tensors (Verde, Arun et al.
2025), so the graph must be a function of shapes alone and every tensor it reads must come from
the parameters, the batch or an op inside the step. HF models break that in four places, each
handled here:

* **attention backend** -- SDPA picks a kernel by device (the CPU flash kernel for real
  tensors, the math path on meta tensors: two different graphs). Models are built with
  ``attn_implementation="eager"``: attention is matmul, softmax and dropout, on every device.
* **masks** -- HF's mask builders inspect the mask's values (``padding_mask.all()``, an
  ``.item()``) to skip work. The adapter passes the 4-D additive mask it builds itself from the
  batch (``0`` where attended, the float32 minimum elsewhere; causal for decoders), which HF
  uses as given.
* **positions and token types** -- passed explicitly (``arange`` and zeros, or the batch's
  ``token_type_ids``), built inside the step by factory ops.
* **buffers** -- ``position_ids``/``token_type_ids`` index buffers and the rotary
  ``inv_freq`` are recomputed inside the step (:func:`step_buffers`) with the formula HF uses
  to create them; any other buffer is refused by name, since its value could not be checked.

Dropout needs nothing: in training jobs HF's dropout layers draw from the step's Philox stream
like any other random op (``verde.protocol.graph.execution.step_stream``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from verde.protocol.jobs.errors import JobSpecError

#: Tasks, the auto class that builds the model for each, and the input field they read.
TASKS: dict[str, tuple[str, str]] = {
    "causal-lm": ("AutoModelForCausalLM", "input_ids"),
    "masked-lm": ("AutoModelForMaskedLM", "input_ids"),
    "sequence-classification": ("AutoModelForSequenceClassification", "input_ids"),
    "token-classification": ("AutoModelForTokenClassification", "input_ids"),
    "embedding": ("AutoModel", "input_ids"),
    "image-classification": ("AutoModelForImageClassification", "pixel_values"),
}
#: Labels equal to this are left out of a loss (HF's convention).
IGNORE_INDEX = -100
_ROPE_BUFFERS = ("inv_freq", "original_inv_freq")
_INFO = "verde_adapter"


@dataclass(frozen=True)
class AdapterInfo:
    """What the adapter knows about a built model: its task, whether it attends causally,
    the keyword arguments its forward takes, and the job config it was built from."""

    task: str
    causal: bool
    accepts: frozenset[str]
    job_config: dict[str, Any] = field(default_factory=dict)


def adapter_info(model: nn.Module) -> AdapterInfo:
    """The :class:`AdapterInfo` of a model built by :func:`build_model`."""
    info = model.__dict__.get(_INFO)
    if not isinstance(info, AdapterInfo):
        raise JobSpecError("program hf: this module was not built by the hf adapter")
    return info


def set_adapter_info(model: nn.Module, info: AdapterInfo) -> None:
    model.__dict__[_INFO] = info


def build_model(hf_config: Mapping[str, Any], task: str, num_labels: int | None) -> nn.Module:
    """The HF model for ``task`` from a config dict, eager attention, float32 parameters."""
    import transformers

    config_dict = dict(hf_config)
    model_type = config_dict.pop("model_type")
    for key in ("attn_implementation", "_attn_implementation", "_attn_implementation_autoset",
                "torch_dtype", "dtype", "transformers_version", "architectures"):
        config_dict.pop(key, None)
    if num_labels is not None:
        config_dict["num_labels"] = num_labels
        config_dict.pop("id2label", None)
        config_dict.pop("label2id", None)
    try:
        config = transformers.AutoConfig.for_model(model_type, **config_dict)
    except (ValueError, TypeError, KeyError) as exc:
        raise JobSpecError(f"program hf: config of model_type {model_type!r} is not usable "
                           f"({exc})") from exc
    config.use_cache = False
    auto = getattr(transformers, TASKS[task][0])
    try:
        model = auto.from_config(config, attn_implementation="eager", dtype=torch.float32)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise JobSpecError(f"program hf: cannot build a {task} model for model_type "
                           f"{model_type!r} ({exc})") from exc
    if model.config._attn_implementation != "eager":
        raise JobSpecError(f"program hf: {type(model).__name__} does not run eager attention")
    set_adapter_info(model, AdapterInfo(task, is_causal(config),
                                        frozenset(inspect.signature(model.forward).parameters)))
    built: nn.Module = model
    return built


def is_causal(config: Any) -> bool:
    """Whether the model attends causally: decoders (a causal-LM architecture with no masked-LM
    one, such as GPT-2 or Llama) or configs that say ``is_decoder``."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = config.model_type
    return bool(getattr(config, "is_decoder", False)) or (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def step_buffers(model: nn.Module, device: torch.device) -> dict[str, torch.Tensor]:
    """Every buffer of ``model``, computed by factory ops on ``device`` (see module doc)."""
    out: dict[str, torch.Tensor] = {}
    for name, buffer in model.named_buffers():
        owner_name, _, last = name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        shape = tuple(buffer.shape)
        if last == "position_ids" and buffer.dtype == torch.int64 and len(shape) == 2:
            out[name] = torch.arange(shape[-1], device=device).expand(shape)
        elif last == "token_type_ids" and buffer.dtype == torch.int64:
            out[name] = torch.zeros(shape, dtype=torch.int64, device=device)
        elif last in _ROPE_BUFFERS and shape and buffer.dtype == torch.float32:
            out[name] = _default_inv_freq(name, owner, shape[0], device)
        else:
            raise JobSpecError(
                f"program hf: model buffer {name} ({buffer.dtype} {list(shape)}) has no known "
                "recipe: its value could not be checked by an arbiter")
    return out


def _default_inv_freq(name: str, owner: nn.Module, half: int, device: torch.device,
                      ) -> torch.Tensor:
    """RoPE's inverse frequencies ``1 / base ** (arange(0, dim, 2) / dim)`` (Su et al. 2021,
    RoFormer), the formula of HF's default rope; other rope types are refused."""
    config = getattr(owner, "config", None)
    rope_type = getattr(owner, "rope_type", "default")
    params = getattr(config, "rope_parameters", None) or {}
    base = params.get("rope_theta", getattr(config, "rope_theta", None))
    if rope_type != "default" or not isinstance(base, int | float):
        raise JobSpecError(f"program hf: rotary buffer {name}: rope type {rope_type!r} is not "
                           "supported (only the default RoPE)")
    dim = 2 * half
    steps = torch.arange(0, dim, 2, dtype=torch.int64, device=device).to(dtype=torch.float32)
    inv_freq: torch.Tensor = 1.0 / (base ** (steps / dim))
    return inv_freq


def attention_window(config: Any) -> int | None:
    """The sliding window a model's attention is limited to (Mistral's ``sliding_window``;
    ``None`` for full attention or a window no layer uses)."""
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return None
    if types is not None and "sliding_attention" not in types:
        return None
    return window


def check_within_window(config: Any, length: int) -> None:
    """Refuse sequences longer than the model's sliding window: the adapter's mask attends the
    whole causal prefix, so past the window verde would compute another model than HF's."""
    window = attention_window(config)
    if window is not None and length > window:
        raise JobSpecError(f"program hf: sequences of {length} tokens exceed the model's "
                           f"sliding attention window of {window}; verde attends every "
                           "earlier position, so only sequences within the window compute "
                           "this model")


def additive_mask(attention_mask: torch.Tensor, causal: bool) -> torch.Tensor:
    """The [B, 1, T, T] float32 mask eager attention adds to its scores: 0 where a query may
    attend a key (a real token, and not a later one for decoders), the float32 minimum
    elsewhere (finite, so a row with nothing to attend stays a finite softmax)."""
    t = attention_mask.shape[-1]
    keep = attention_mask[:, None, None, :].to(torch.bool)
    if causal:
        keep = keep & torch.ones(t, t, dtype=torch.bool, device=attention_mask.device).tril()
    zeros = torch.zeros(keep.shape, dtype=torch.float32, device=attention_mask.device)
    return zeros.masked_fill(keep.logical_not(), torch.finfo(torch.float32).min)


def forward(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> Any:
    """Run the HF model on a batch with explicit masks, positions and token types."""
    info = adapter_info(model)
    task, accepts = info.task, info.accepts
    if task == "image-classification":
        return model(pixel_values=batch["pixel_values"], return_dict=True)
    ids = batch["input_ids"]
    b, t = ids.shape
    mask = batch.get("attention_mask")
    if mask is None:
        mask = torch.ones((b, t), dtype=torch.int64, device=ids.device)
    kwargs: dict[str, Any] = {"input_ids": ids,
                              "attention_mask": additive_mask(mask, info.causal)}
    if "position_ids" in accepts:
        kwargs["position_ids"] = torch.arange(t, device=ids.device).unsqueeze(0).expand(b, t)
    if "token_type_ids" in accepts and getattr(model.config, "type_vocab_size", None):
        types = batch.get("token_type_ids")
        kwargs["token_type_ids"] = (types if types is not None
                                    else torch.zeros((b, t), dtype=torch.int64, device=ids.device))
    if "use_cache" in accepts:
        kwargs["use_cache"] = False
    return model(**kwargs, return_dict=True)


def outputs(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """What an inference job commits to: logits, or mean-pooled embeddings."""
    result = forward(model, batch)
    if adapter_info(model).task != "embedding":
        logits: torch.Tensor = result.logits
        return logits
    hidden: torch.Tensor = result.last_hidden_state
    mask = batch.get("attention_mask")
    if mask is None:
        pooled: torch.Tensor = hidden.mean(dim=1)
        return pooled
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                         weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the targets that are not ``IGNORE_INDEX`` (and have weight 1):
    sum of the kept losses over their count, the count clamped to 1 (no branch on values)."""
    classes = logits.shape[-1]
    flat = logits.reshape(-1, classes)
    target = targets.reshape(-1)
    keep = target.ne(IGNORE_INDEX)
    if weights is not None:
        keep = keep & weights.reshape(-1).to(torch.bool)
    safe = torch.where(keep, target, torch.zeros_like(target))
    nll = F.cross_entropy(flat, safe, reduction="none")
    kept = keep.to(nll.dtype)
    return (nll * kept).sum() / kept.sum().clamp_min(1.0)


def loss(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The task's training loss (see ``verde.protocol.jobs.hf.program`` for the fields)."""
    task = adapter_info(model).task
    if task == "embedding":
        raise JobSpecError("program hf: task embedding has no training loss; use kind = "
                           "\"infer\" (or a classification task to fine-tune)")
    logits = forward(model, batch).logits
    mask = batch.get("attention_mask")
    if task == "causal-lm":
        labels = batch.get("labels", batch["input_ids"])
        weights = None if mask is None else mask[:, 1:]
        return masked_cross_entropy(logits[:, :-1], labels[:, 1:], weights)
    if task in ("masked-lm", "token-classification"):
        return masked_cross_entropy(logits, batch["labels"], mask)
    return masked_cross_entropy(logits, batch["labels"])
