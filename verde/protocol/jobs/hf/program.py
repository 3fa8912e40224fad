"""The ``hf`` program: a Hugging Face model, a task that picks its head and loss, no surgery.

Job config (the spec's ``[config]`` table)::

    task = "sequence-classification"   # causal-lm, masked-lm, sequence-classification,
                                       # token-classification, embedding (infer only),
                                       # image-classification
    model = "path/to/model-dir"        # config.json (+ model.safetensors): where, not what
    # config_digest / weights_digest   # filled in from the directory, checked when given;
                                       # weights_digest = "" starts from seeded parameters
    # hf_config = {model_type = "bert", ...}   # instead of model: the config inline
    num_labels = 2                     # classification tasks (default: the config's, or 2)
    # transformers = "5.x"             # filled in: the installed version, checked when given

Dataset fields: ``input_ids`` (int64 [T]) and optionally ``attention_mask`` (0/1, [T]) and
``token_type_ids``; ``labels``: int64 per sample (sequence and image classification) or [T]
(token classification, masked-LM; -100 is ignored; causal-LM defaults to the next token of
``input_ids``, masked by ``attention_mask``). Vision: ``pixel_values`` (float32 [C, H, W]).

Parameters are the HF model's own names (``bert.encoder.layer.0...``), so the trained state's
``param/`` entries are a ``state_dict`` ``from_pretrained`` loads. Initialisation: the
checkpoint's tensors where the directory has weights (HF names mapped by
:mod:`verde.protocol.jobs.hf.checkpoint`), seeded values (a function of the job seed) for
everything else: uniform with HF's ``initializer_range`` as standard deviation, norms' weights
ones, biases zeros.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.hf import adapter, source
from verde.protocol.jobs.hf.checkpoint import match_checkpoint
from verde.protocol.jobs.programs import FieldShapes, Program, seeded_parameter

_KEYS = {"task", "model", "hf_config", "config_digest", "weights_digest", "num_labels",
         "transformers"}
_CLASSIFICATION = ("sequence-classification", "token-classification", "image-classification")
_HEX = frozenset("0123456789abcdef")


def _is_digest(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


@functools.lru_cache(maxsize=32)
def _digests_cached(directory: str, stamp: tuple[Any, ...]) -> tuple[str, str]:
    return source.directory_digests(directory)


def _directory_digests(directory: str) -> tuple[str, str]:
    """Digests of a model directory, recomputed only when its files change."""
    root = Path(directory)
    files = [root / source.CONFIG_FILE, *source.weight_files(root)]
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file())
    return _digests_cached(str(root.resolve()), stamp)


class HFProgram(Program):
    """Hugging Face ``transformers`` models (see the module docstring)."""

    name = "hf"
    kinds = ("train", "infer", "generate")
    source_modules = ("verde.protocol.jobs.hf.adapter", "verde.protocol.jobs.hf.checkpoint",
                      "verde.protocol.jobs.hf.source")
    #: Config keys naming local files: relative to a spec file (``jobs.spec_file``).
    local_paths = ("model",)

    # --- config ---------------------------------------------------------------------------

    def normalize_config(self, config: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(config) - _KEYS)
        if unknown:
            raise JobSpecError(f"program hf: unknown config key(s) {unknown}; known: "
                               f"{sorted(_KEYS)}")
        task = config.get("task")
        if task not in adapter.TASKS:
            raise JobSpecError(f"program hf: task must be one of {sorted(adapter.TASKS)}, "
                               f"got {task!r}")
        installed = source.transformers_version()
        claimed = config.get("transformers", installed)
        if claimed != installed:
            raise JobSpecError(f"program hf: this job was made with transformers {claimed}, "
                               f"this process has {installed}; HF's modelling code defines the "
                               "step graph, so both must run the same version")
        out: dict[str, Any] = {"task": task, "transformers": installed}
        if ("model" in config) == ("hf_config" in config):
            raise JobSpecError("program hf: give exactly one of 'model' (a local model "
                               "directory) and 'hf_config' (the config inline)")
        hf_config = self._model_source(config, out)
        if task in _CLASSIFICATION:
            labels = config.get("num_labels", hf_config.get("num_labels", 2))
            if not isinstance(labels, int) or isinstance(labels, bool) or labels < 1:
                raise JobSpecError(f"program hf: num_labels must be a positive integer, got "
                                   f"{labels!r}")
            out["num_labels"] = labels
        elif "num_labels" in config:
            raise JobSpecError(f"program hf: num_labels is for classification tasks, not {task}")
        return out

    def _model_source(self, config: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
        if "hf_config" in config:
            inline = config["hf_config"]
            if not isinstance(inline, Mapping) or not isinstance(inline.get("model_type"), str):
                raise JobSpecError("program hf: hf_config must be a table with a 'model_type'")
            for key in ("config_digest", "weights_digest"):
                if config.get(key, "") != "":
                    raise JobSpecError(f"program hf: {key} belongs to a model directory, not "
                                       "to an inline hf_config")
            source.config_digest(inline)  # canonical-encodable
            out["hf_config"] = dict(inline)
            return dict(inline)
        directory = config["model"]
        if not isinstance(directory, str) or not directory:
            raise JobSpecError("program hf: model must be the path of a local model directory")
        if not Path(directory).is_dir():
            raise JobSpecError(f"program hf: model directory {directory} does not exist")
        config_hex, weights_hex = _directory_digests(directory)
        for key, actual in (("config_digest", config_hex), ("weights_digest", weights_hex)):
            claimed = config.get(key, actual)
            if key == "weights_digest" and claimed == "":
                out[key] = ""  # the job starts from seeded parameters despite the weights
                continue
            if not _is_digest(claimed):
                raise JobSpecError(f"program hf: {key} must be 64 lowercase hex digits, got "
                                   f"{claimed!r}")
            if claimed != actual:
                raise JobSpecError(f"program hf: model directory {directory}: its {key} is "
                                   f"{actual or '(no weights)'}, the job's is {claimed}")
            out[key] = claimed
        out["model"] = directory
        return source.read_config(directory)

    def identity_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in config.items() if k != "model"}

    def portable_config(self, config: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """The config a machine without this one's files can run (a model directory's config
        inlined as ``hf_config``) and whether the job's initial parameters come from local files
        (its weights: the client uploads them as ``init.params``;
        ``verde.protocol.jobs.portable``)."""
        if "model" not in config:
            return dict(config), False
        out = {k: v for k, v in config.items()
               if k not in ("model", "config_digest", "weights_digest")}
        out["hf_config"] = self.hf_config(config)
        return out, bool(config.get("weights_digest"))

    def hf_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The model's HF config dict (inline, or the directory's ``config.json``, checked
        against ``config_digest``)."""
        if "hf_config" in config:
            return dict(config["hf_config"])
        data = source.read_config(config["model"])
        if source.config_digest(data) != config["config_digest"]:
            raise JobSpecError(f"program hf: {config['model']}/config.json changed: its digest "
                               f"is no longer the job's {config['config_digest']}")
        return data

    # --- model ----------------------------------------------------------------------------

    def build(self, config: Mapping[str, Any], fields: FieldShapes) -> nn.Module:
        task = config["task"]
        field = adapter.TASKS[task][1]
        if field not in fields:
            raise JobSpecError(f"program hf: task {task} reads dataset field {field!r}; the "
                               f"dataset has {sorted(fields)}")
        shape, dtype = fields[field]
        if field == "input_ids" and (len(shape) != 1 or dtype != torch.int64):
            raise JobSpecError(f"program hf: field input_ids must be int64 [seq_len], got "
                               f"{dtype} {list(shape)}")
        if field == "pixel_values" and (len(shape) != 3 or dtype != torch.float32):
            raise JobSpecError(f"program hf: field pixel_values must be float32 [C, H, W], got "
                               f"{dtype} {list(shape)}")
        if task not in ("embedding", "causal-lm") and "labels" not in fields:
            raise JobSpecError(f"program hf: task {task} needs a 'labels' field")
        if "labels" in fields and task != "embedding":
            per_token = task in ("causal-lm", "masked-lm", "token-classification")
            want = tuple(shape) if per_token else ()
            got, label_dtype = fields["labels"]
            if tuple(got) != want or label_dtype != torch.int64:
                raise JobSpecError(f"program hf: task {task} needs int64 labels of shape "
                                   f"{list(want)} per sample, got {label_dtype} {list(got)}")
        for extra in ("attention_mask", "token_type_ids"):
            if extra in fields and (tuple(fields[extra][0]) != tuple(shape)
                                    or fields[extra][1] != torch.int64):
                raise JobSpecError(f"program hf: field {extra} must be int64 like input_ids "
                                   f"{list(shape)}, got {fields[extra][1]} "
                                   f"{list(fields[extra][0])}")
        model = adapter.build_model(self.hf_config(config), task, config.get("num_labels"))
        if field == "input_ids":
            adapter.check_within_window(model.config, shape[0])
        info = adapter.adapter_info(model)  # initial_parameters reads the weights' source
        adapter.set_adapter_info(model, dataclasses.replace(info, job_config=dict(config)))
        return model

    def step_buffers(self, module: nn.Module, batch: Mapping[str, torch.Tensor],
                     ) -> dict[str, torch.Tensor]:
        device = next(iter(batch.values())).device
        return adapter.step_buffers(module, device)

    def outputs(self, module: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return adapter.outputs(module, batch)

    def loss(self, module: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return adapter.loss(module, batch)

    def generation_logits(self, module: nn.Module, ids: torch.Tensor) -> torch.Tensor:
        return adapter.outputs(module, {"input_ids": ids})[:, -1]

    def check_generation(self, config: Mapping[str, Any], module: nn.Module,
                         longest: int) -> None:
        if config["task"] != "causal-lm":
            raise JobSpecError(f"program hf: a generate job needs task causal-lm, not "
                               f"{config['task']}")
        built = module.config  # defaults filled in, unlike the job's table
        limit = getattr(built, "max_position_embeddings", None)
        if not isinstance(limit, int):
            limit = getattr(built, "n_positions", None)
        adapter.check_within_window(built, longest)
        if isinstance(limit, int) and longest > limit:
            raise JobSpecError(f"program hf: a prompt plus its new tokens ({longest}) exceed the "
                               f"model's {limit} positions")

    def check_data(self, config: Mapping[str, Any], fields: Mapping[str, np.ndarray]) -> None:
        ids = fields.get("input_ids")
        vocab = None
        if ids is not None:
            vocab = self.hf_config(config).get("vocab_size")
            if isinstance(vocab, int) and (ids.min() < 0 or ids.max() >= vocab):
                raise JobSpecError(f"program hf: input_ids must be in [0, {vocab}), got range "
                                   f"[{ids.min()}, {ids.max()}]")
        mask = fields.get("attention_mask")
        if mask is not None and (mask.dtype.kind not in "iub" or not np.isin(mask, (0, 1)).all()):
            raise JobSpecError("program hf: attention_mask must hold only 0 and 1")
        labels = fields.get("labels")
        if labels is None:
            return
        if labels.dtype.kind not in "iu":
            raise JobSpecError(f"program hf: labels must be integers, got {labels.dtype}")
        kept = labels[labels != adapter.IGNORE_INDEX]
        top = config.get("num_labels", vocab)
        if kept.size and (kept.min() < 0 or (isinstance(top, int) and kept.max() >= top)):
            raise JobSpecError(f"program hf: labels must be in [0, {top}) or "
                               f"{adapter.IGNORE_INDEX}, got range [{kept.min()}, {kept.max()}]")

    # --- parameters -----------------------------------------------------------------------

    def initial_parameters(self, module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
        params = seeded_hf_parameters(module, seed)
        config = adapter.adapter_info(module).job_config
        if config.get("weights_digest"):
            params.update(self.checkpoint_parameters(module, config))
        return params

    def checkpoint_parameters(self, module: nn.Module, config: Mapping[str, Any],
                              ) -> dict[str, torch.Tensor]:
        """The parameters the job's model directory holds (checked against its digest)."""
        tensors = source.read_weights(config["model"])
        if source.weights_digest(tensors) != config["weights_digest"]:
            raise JobSpecError(f"program hf: the weights in {config['model']} changed: their "
                               f"digest is no longer the job's {config['weights_digest']}")
        return match_checkpoint(module, tensors).found


def seeded_hf_parameters(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded parameters of an HF model: biases zeros, 1-D weights (norms) ones, everything
    else uniform with standard deviation ``initializer_range`` (HF's normal(0, range) init
    has the same scale)."""
    std = float(getattr(module.config, "initializer_range", 0.02) or 0.02)
    bound = math.sqrt(3.0) * std
    out = {}
    for name, p in module.named_parameters():
        shape = tuple(p.shape)
        last = name.rsplit(".", 1)[-1]
        rule = "zeros" if last == "bias" else "ones" if len(shape) == 1 else "uniform"
        out[name] = seeded_parameter(seed, name, shape, rule, bound, program="hf")
    return out


def model_directory_spec(directory: str | Path, task: str,
                         **extra: Any) -> dict[str, Any]:
    """An ``hf`` config table for a local model directory, digests filled in (what a client
    puts under ``config``; ``extra``: ``num_labels``...)."""
    config_hex, weights_hex = source.directory_digests(directory)
    return {"task": task, "model": str(directory), "config_digest": config_hex,
            "weights_digest": weights_hex, **extra}
