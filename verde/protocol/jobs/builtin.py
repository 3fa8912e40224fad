"""Built-in programs: MLP classifier, small CNN, small GPT language model.

They are written so that the step graph is a pure function of shapes (Verde, Arun et al. 2025:
the arbiter replays a step on meta tensors): attention is spelled out with matmul and softmax
(``scaled_dot_product_attention`` picks a backend by device, which would change the graph),
and the causal mask and positions are built inside the step by factory ops. The GPT takes
``dropout`` (default 0): in training jobs its masks are drawn from the step's Philox stream
(``verde.protocol.graph.execution.step_stream``), so they are part of the spec, the same on
every machine, and a dropout op is disputed like any other; inference jobs run without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from verde.protocol.jobs.errors import JobSpecError
from verde.protocol.jobs.programs import FieldShapes, Program


def _field(fields: FieldShapes, name: str, program: str) -> tuple[tuple[int, ...], torch.dtype]:
    if name not in fields:
        raise JobSpecError(f"program {program}: dataset has no field {name!r} ({sorted(fields)})")
    return fields[name]


def _check_labels(program: str, config: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
    y = fields.get("y")
    if y is not None and (y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= config["classes"]):
        raise JobSpecError(
            f"program {program}: labels y must be integers in [0, {config['classes']}), "
            f"got range [{y.min()}, {y.max()}]"
        )


class _Classifier(Program):
    """A classifier of the ``x`` field into ``config["classes"]`` labels ``y`` (cross-entropy)."""

    def check_data(self, config: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        _check_labels(self.name, config, fields)

    def outputs(self, module: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out: torch.Tensor = module(batch["x"])
        return out

    def loss(self, module: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self.outputs(module, batch), batch["y"])


class MLP(_Classifier):
    """Multi-layer perceptron classifier on the ``x`` (features) and ``y`` (labels) fields."""

    name = "mlp"
    defaults: ClassVar[dict[str, Any]] = {"hidden": 64, "layers": 1, "classes": 10}

    def build(self, config: Mapping[str, Any], fields: FieldShapes) -> nn.Module:
        shape, dtype = _field(fields, "x", self.name)
        if len(shape) != 1 or not dtype.is_floating_point:
            raise JobSpecError(f"program mlp: field x must be float vectors, got {shape} {dtype}")
        _field(fields, "y", self.name)
        width, layers = shape[0], []
        for _ in range(config["layers"]):
            layers += [nn.Linear(width, config["hidden"]), nn.ReLU()]
            width = config["hidden"]
        layers.append(nn.Linear(width, config["classes"]))
        return nn.Sequential(*layers)


class _CNNModule(nn.Module):
    def __init__(self, image: tuple[int, int, int], channels: int, classes: int) -> None:
        super().__init__()
        c, h, w = image
        self.image = image
        self.conv1 = nn.Conv2d(c, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.head = nn.Linear(channels * ((h + 1) // 2) * ((w + 1) // 2), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.image)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        logits: torch.Tensor = self.head(x.flatten(1))
        return logits


class CNN(_Classifier):
    """Two 3x3 convolutions and a linear head; ``x`` holds flattened square images."""

    name = "cnn"
    defaults: ClassVar[dict[str, Any]] = {"channels": 8, "classes": 10, "in_channels": 1}

    def build(self, config: Mapping[str, Any], fields: FieldShapes) -> nn.Module:
        shape, dtype = _field(fields, "x", self.name)
        _field(fields, "y", self.name)
        c = config["in_channels"]
        side = math.isqrt(shape[0] // c) if len(shape) == 1 else 0
        if len(shape) != 1 or side * side * c != shape[0] or not dtype.is_floating_point:
            raise JobSpecError(
                f"program cnn: field x must be flattened {c}-channel square float images, "
                f"got shape {shape}"
            )
        return _CNNModule((c, side, side), config["channels"], config["classes"])


def _dropout(p: float) -> nn.Module:
    """A dropout layer, or nothing at p = 0 (no random op in the graph at all)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class _Block(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.attn_drop = _dropout(dropout)
        self.resid_drop = _dropout(dropout)
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        hd = d // self.heads
        q = q.reshape(b, t, self.heads, hd).transpose(1, 2)
        k = k.reshape(b, t, self.heads, hd).transpose(1, 2)
        v = v.reshape(b, t, self.heads, hd).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(mask.logical_not(), -1e9)
        att = torch.matmul(self.attn_drop(torch.softmax(scores, dim=-1)), v)
        x = x + self.resid_drop(self.proj(att.transpose(1, 2).reshape(b, t, d)))
        mlp = self.resid_drop(self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh")))
        out: torch.Tensor = x + mlp
        return out


class _GPTModule(nn.Module):
    def __init__(self, vocab: int, d: int, layers: int, heads: int, context: int, *,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        self.drop = _dropout(dropout)
        self.blocks = nn.ModuleList(_Block(d, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.drop(self.tok(tokens) + self.pos(positions))
        for block in self.blocks:
            x = block(x)
        logits: torch.Tensor = self.head(self.ln(x))
        return logits


class GPT(Program):
    """A small decoder-only transformer trained on next-token prediction of ``tokens``."""

    name = "gpt"
    kinds = ("train", "infer", "generate")
    prompt_field = "tokens"
    #: ``context`` 0: the ``tokens`` field's length - 1 (training predicts each next token);
    #: a generate job needs room for its prompts and new tokens.
    defaults: ClassVar[dict[str, Any]] = {"vocab": 64, "d_model": 32, "layers": 2, "heads": 2,
                                          "dropout": 0.0, "context": 0}

    def check_config(self, config: dict[str, Any]) -> None:
        if config["d_model"] % config["heads"]:
            raise JobSpecError("program gpt: d_model must be a multiple of heads")
        if config["context"] < 0:
            raise JobSpecError("program gpt: context must be >= 0 (0: the tokens field's)")
        if not 0.0 <= config["dropout"] < 1.0:
            raise JobSpecError(f"program gpt: dropout must be in [0, 1), got {config['dropout']}")

    def build(self, config: Mapping[str, Any], fields: FieldShapes) -> nn.Module:
        shape, dtype = _field(fields, "tokens", self.name)
        # training predicts each next token (two at least); a prompt may be one token
        shortest = 1 if config["context"] else 2
        if len(shape) != 1 or shape[0] < shortest or dtype != torch.int64:
            raise JobSpecError(f"program gpt: field tokens must be int64 [seq_len + 1] "
                               f"(a prompt of [seq_len] with config context set), got "
                               f"{str(dtype).removeprefix('torch.')} {list(shape)}")
        context = config["context"] or shape[0] - 1
        return _GPTModule(config["vocab"], config["d_model"], config["layers"], config["heads"],
                          context, dropout=float(config["dropout"]))  # fmt: skip

    def check_data(self, config: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        tokens = fields.get("tokens")
        if tokens is not None and (tokens.min() < 0 or tokens.max() >= config["vocab"]):
            raise JobSpecError(
                f"program gpt: tokens must be in [0, {config['vocab']}), got range "
                f"[{tokens.min()}, {tokens.max()}]"
            )

    def init_rule(self, name: str, shape: tuple[int, ...]) -> tuple[str, float]:
        if name.endswith(("tok.weight", "pos.weight")):
            return ("uniform", 0.1)
        return super().init_rule(name, shape)

    def outputs(self, module: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out: torch.Tensor = module(batch["tokens"][:, :-1])
        return out

    def check_generation(self, config: Mapping[str, Any], module: nn.Module,
                         longest: int) -> None:
        if not config["context"] or longest > config["context"]:
            raise JobSpecError(f"program gpt: a generate job needs config context >= the longest "
                               f"prompt plus its new tokens ({longest}), got "
                               f"{config['context']}")

    def generation_logits(self, module: nn.Module, ids: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = module(ids)[:, -1]
        return logits

    def loss(self, module: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits = self.outputs(module, batch)
        targets = batch["tokens"][:, 1:]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


BUILTIN_PROGRAMS: tuple[Program, ...] = (MLP(), CNN(), GPT())
