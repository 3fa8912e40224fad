"""The ``matmul`` program: one matrix product ``x @ weight`` as a verde inference job.

Why: coded computation (``verde.integration.coded_compute``) hands every worker one block
product of a larger matmul — the sub-products of the fault-tolerant Strassen-like scheme
(``verde.coding.strassen_ft``). For a provider to commit to that product, be held to it with
proofs and lose a dispute over it (Verde, Arun et al. 2025), the product must be a job every
party can name: ``kind = "infer"`` of this program, the left operand's rows as the dataset
(field ``x``), the right operand as the uploaded parameter ``weight`` (``init.params``).
Under ``repops`` the product is the same bits on every machine and for every batch size, so a
dispute over it ends by recomputing the one ``mm`` it disagrees on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.programs import FieldShapes, Program


class _RightOperand(nn.Module):
    """Holds the right operand ``weight`` ``[in_features, out_features]`` (not transposed:
    the uploaded parameter is exactly the block the scheme gives the node)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


class Matmul(Program):
    """``x @ weight`` for float vectors ``x`` (field ``x``, ``[in_features]`` per sample)."""

    name = "matmul"
    kinds = ("infer",)
    defaults: ClassVar[dict[str, Any]] = {"out_features": 1}

    def build(self, config: Mapping[str, Any], fields: FieldShapes) -> nn.Module:
        if "x" not in fields:
            raise JobSpecError(f"program matmul: dataset has no field 'x' ({sorted(fields)})")
        shape, dtype = fields["x"]
        if len(shape) != 1 or not dtype.is_floating_point:
            raise JobSpecError(f"program matmul: field x must be float vectors (the left "
                               f"operand's rows), got {str(dtype).removeprefix('torch.')} "
                               f"{list(shape)}")
        return _RightOperand(shape[0], config["out_features"])

    def outputs(self, module: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out: torch.Tensor = module(batch["x"])
        return out

    def init_rule(self, name: str, shape: tuple[int, ...]) -> tuple[str, float]:
        # weight is [in, out]: its fan-in is the first dimension (jobs normally upload it)
        return ("uniform", 1.0 / math.sqrt(shape[0]))
