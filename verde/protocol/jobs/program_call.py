"""Calling a program's own ``loss``/``outputs``/``generation_logits`` on given parameters.

Why a module: a job's module is built once on the meta device and shared (``JobContext``); every
step, shape-only replay and meta probe runs it with ``torch.func.functional_call`` on that
step's parameters and buffers, through :class:`ProgramCall`, so the program sees its module and
a batch exactly as in :class:`~verde.protocol.jobs.programs.Program`'s interface.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from verde.protocol.jobs.programs import FieldShapes, Program

#: The batch key under which a generate step hands its token ids to :class:`ProgramCall`.
GENERATE_IDS = "generate/ids"
_WHAT = ("loss", "outputs", "generate")


class ProgramCall(nn.Module):
    """Lets ``torch.func.functional_call`` drive a program's ``loss``, ``outputs`` or
    ``generation_logits`` (``what``); its parameters are the module's, under ``inner.``."""

    def __init__(self, program: Program, module: nn.Module, what: str) -> None:
        super().__init__()
        if what not in _WHAT:
            raise ValueError(f"what must be one of {_WHAT}, got {what!r}")
        self.program = program
        self.inner = module
        self.what = what

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.what == "generate":
            return self.program.generation_logits(self.inner, batch[GENERATE_IDS])
        fn = self.program.loss if self.what == "loss" else self.program.outputs
        return fn(self.inner, batch)


def meta_parameters(program: Program, module: nn.Module, fields: Mapping[str, torch.Tensor],
                    ) -> dict[str, torch.Tensor]:
    """The module's own (meta) parameters and the program's buffers, keyed for ProgramCall."""
    params: dict[str, torch.Tensor] = {"inner." + n: p for n, p in module.named_parameters()}
    params.update({"inner." + n: b for n, b in program.step_buffers(module, fields).items()})
    return params


def output_meta(program: Program, module: nn.Module, batch: FieldShapes,
                ) -> tuple[tuple[int, ...], torch.dtype]:
    """Shape and dtype of the outputs of one batch whose fields have the shapes ``batch``
    (a meta forward)."""
    fields = {k: torch.empty(shape, dtype=dtype, device="meta")
              for k, (shape, dtype) in batch.items()}
    with torch.no_grad():
        out = torch.func.functional_call(ProgramCall(program, module, "outputs"),
                                         meta_parameters(program, module, fields), (fields,))
    return tuple(out.shape), out.dtype


def vocab_size(program: Program, module: nn.Module) -> int:
    """The width of a generating program's logits (a meta forward of one token)."""
    ids = torch.zeros((1, 1), dtype=torch.int64, device="meta")
    with torch.no_grad():
        logits = torch.func.functional_call(
            ProgramCall(program, module, "generate"),
            meta_parameters(program, module, {program.prompt_field: ids}),
            ({GENERATE_IDS: ids},))
    return int(logits.shape[-1])
