"""Small Hugging Face jobs for the tests: configs built in code, datasets written to tmp."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from verde.protocol.faults.hf_campaign import dataset_arrays, hf_config
from verde.protocol.jobs.datasets import file_dataset_root
from verde.protocol.jobs.spec import JobSpec

TASK = {"bert": "sequence-classification", "gpt2": "causal-lm", "llama": "causal-lm",
        "vit": "image-classification"}


def tiny_config(arch: str, dropout: float = 0.1) -> dict[str, Any]:
    config = hf_config(arch, random.Random(1), dropout)
    if arch == "llama":  # grouped-query attention: 4 query heads share 2 key/value heads
        config.update(hidden_size=16, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=32)
    return config


def write_dataset(tmp: Path, arch: str, task: str, *, padding: bool = True, n: int = 12,
                  seed: int = 0) -> dict[str, Any]:
    arrays = dataset_arrays(arch, task, tiny_config(arch), random.Random(seed), padding, n=n)
    location = tmp / f"{arch}-{task}-{seed}-{n}-{int(padding)}.npz"
    np.savez(location, **arrays)
    return {"name": "file", "location": str(location), "root": file_dataset_root(location)}


def hf_doc(tmp: Path, arch: str, *, task: str | None = None, dropout: float = 0.1,
           **changes: Any) -> dict[str, Any]:
    task = task or TASK[arch]
    config: dict[str, Any] = {"task": task, "hf_config": tiny_config(arch, dropout)}
    if task in ("sequence-classification", "image-classification", "token-classification"):
        config["num_labels"] = 3
    doc: dict[str, Any] = {
        "program": "hf", "config": config, "dataset": write_dataset(tmp, arch, task),
        "optimizer": {"name": "adamw", "lr": 0.01}, "steps": 2, "batch_size": 4, "seed": 3,
        "checkpoint_interval": 1,
    }
    doc.update(changes)
    return doc


def hf_spec(tmp: Path, arch: str, **changes: Any) -> JobSpec:
    return JobSpec.from_mapping(hf_doc(tmp, arch, **changes))
