"""Writing an ``hf`` job's parameters as a Hugging Face model directory.

What a user came for is a model ``transformers`` loads: ``config.json`` (the job's model config,
with the task's head: ``num_labels``, ``architectures``) and ``model.safetensors`` holding the
parameters under their HF names, so ``AutoModelFor<Task>.from_pretrained(directory)`` just
works. The parameters are whatever the caller verified (e.g. the final state fetched with
proofs against the signed root, ``verde.protocol.peers.fetch.fetch_final_state``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from verde.protocol.jobs.context import PARAM, JobContext
from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.hf.source import CONFIG_FILE, WEIGHTS_FILE


def export_model_directory(ctx: JobContext, params: Mapping[str, torch.Tensor],
                           directory: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``params`` (keyed by parameter name
    or by ``param/<name>`` state entry) of the ``hf`` job ``ctx``; returns the directory."""
    from safetensors.torch import save_file

    if ctx.spec.program != "hf":
        raise JobSpecError(f"job {ctx.spec.job_id[:16]} runs program {ctx.spec.program}, not hf")
    plain = {k[len(PARAM):] if k.startswith(PARAM) else k: v for k, v in params.items()}
    missing = sorted(set(ctx.param_names) - set(plain))
    if missing:
        raise JobSpecError(f"export of job {ctx.spec.job_id[:16]}: parameters {missing[:5]} "
                           "are missing")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = getattr(ctx.module, "config").to_dict()  # noqa: B009
    config["architectures"] = [type(ctx.module).__name__]
    for key in ("_attn_implementation_autoset", "attn_implementation"):
        config.pop(key, None)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n",
                                   encoding="utf-8")
    tensors = {n: plain[n].detach().to("cpu").contiguous() for n in ctx.param_names}
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    return out
