"""Where an ``hf`` job's model comes from, and what of it is the job's identity.

A job names either a local model directory (``model = "<dir>"`` with ``config.json`` and,
optionally, ``model.safetensors`` or a sharded ``model.safetensors.index.json``) or inlines
the config (``hf_config = {...}``). Like a dataset file's ``location``, the directory is only
where this machine finds the files: the job binds ``config_digest`` (SHA-256 of the canonical
JSON of ``config.json``) and ``weights_digest`` (SHA-256 of the canonical JSON of
``{tensor name: proofs.tensor_digest}`` over the checkpoint's tensors, so a re-saved file with
the same tensors has the same digest). Both are filled in from the directory when left out and
checked against it when given. The installed ``transformers`` version is bound as well: HF's
modelling code defines the graph, and another version may compute another one.

Checkpoints are read from safetensors only: ``pytorch_model.bin`` is a pickle, and files from
other parties are never unpickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from proofs import canonical_json
from proofs.digest import tensor_digest
from verde.protocol.jobs.errors import JobSpecError

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
CONFIG_FILE = "config.json"


class HFUnavailable(JobSpecError):
    """The ``hf`` program needs ``transformers``, which is not installed."""


def transformers_version() -> str:
    """The installed transformers version (``HFUnavailable`` when it is missing)."""
    try:
        import transformers
    except ImportError as exc:
        raise HFUnavailable("program hf needs the transformers package: install verde[hf] "
                            f"({exc})") from exc
    return str(transformers.__version__)


def config_digest(config: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of a model config (``config.json`` parsed)."""
    try:
        return hashlib.sha256(canonical_json(dict(config))).hexdigest()
    except ValueError as exc:
        raise JobSpecError(f"program hf: the model config cannot be encoded canonically "
                           f"({exc})") from exc


def read_config(directory: str | Path) -> dict[str, Any]:
    """``config.json`` of a model directory, parsed."""
    path = Path(directory) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JobSpecError(f"program hf: model directory {directory}: cannot read "
                           f"{CONFIG_FILE} ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise JobSpecError(f"program hf: {path}: invalid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise JobSpecError(f"program hf: {path} must be an object with a 'model_type'")
    return data


def weight_files(directory: str | Path) -> list[Path]:
    """The safetensors files holding a directory's weights (empty list: no weights)."""
    root = Path(directory)
    if (root / WEIGHTS_FILE).is_file():
        return [root / WEIGHTS_FILE]
    index = root / WEIGHTS_INDEX
    if index.is_file():
        try:
            mapping = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(mapping.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise JobSpecError(f"program hf: {index}: not a safetensors index ({exc})") from exc
        files = [root / n for n in names]
        missing = [str(f) for f in files if not f.is_file() or f.parent != root]
        if missing:
            raise JobSpecError(f"program hf: {index} names missing shards {missing}")
        return files
    if (root / "pytorch_model.bin").is_file():
        raise JobSpecError(f"program hf: {root} holds pytorch_model.bin only, a pickle, which "
                           "verde never loads; save the model with safe_serialization (a "
                           "model.safetensors)")
    return []


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a directory's safetensors checkpoint, as stored."""
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for file in weight_files(directory):
        try:
            part = load_file(str(file))
        except (OSError, ValueError, RuntimeError) as exc:
            raise JobSpecError(f"program hf: cannot read {file} ({exc})") from exc
        clash = sorted(set(part) & set(tensors))
        if clash:
            raise JobSpecError(f"program hf: tensors {clash[:5]} appear in two shards")
        tensors.update(part)
    return tensors


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 over ``{name: tensor_digest hex}`` of a checkpoint's tensors."""
    listing = {name: tensor_digest(t).hex() for name, t in tensors.items()}
    return hashlib.sha256(canonical_json(listing)).hexdigest()


def directory_digests(directory: str | Path) -> tuple[str, str]:
    """(config digest, weights digest or "" without weights) of a model directory."""
    config = read_config(directory)
    tensors = read_weights(directory) if weight_files(directory) else {}
    return config_digest(config), weights_digest(tensors) if tensors else ""
