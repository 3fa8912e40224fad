"""Admission makes the guarantee true: what a provider accepts, an honest provider can defend.

Each refusal is a one-line ``VerdeInputError`` naming the op or the difference; each has a twin
that is accepted (and, for the torch backend, defended in a dispute)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from verde.errors import VerdeInputError
from verde.protocol.dispute.driver import run_dispute
from verde.protocol.dispute.state import DisputeState
from verde.protocol.faults import CheatingProvider, FaultPlan
from verde.protocol.graph.admission import TraceMismatch, UnsupportedOperation, admit_job
from verde.protocol.jobs.programs import Program
from verde.protocol.jobs.registry import register_program
from verde.protocol.jobs.spec import JobSpec, torch_platform
from verde.protocol.peers import LocalPeer
from verde.protocol.provider.provider import Provider

from .conftest import key, tiny_spec

DROPOUT_OP = "aten.bernoulli_.float"


class _Attention(nn.Module):
    def __init__(self, features: int, attention: str) -> None:
        super().__init__()
        self.qkv = nn.Linear(features // 4, 3 * 8)
        self.head = nn.Linear(4 * 8, 10)
        self.drop = nn.Dropout(0.2)
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        q, k, v = self.qkv(x.reshape(b, 4, -1)).split(8, dim=-1)
        p = 0.2 if self.training else 0.0
        if self.attention == "sdpa":  # decomposes to matmul, softmax and a dropout draw
            att = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        elif self.attention == "fused":  # the CPU kernel SDPA picks for real tensors
            att = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), 0.0)[0].squeeze(1)
        elif self.attention == "by-device" and not x.is_meta:  # a device-dependent path
            att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)), dim=-1).matmul(v)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(8))
            att = torch.matmul(self.drop(torch.softmax(scores, dim=-1)), v)
        return self.head(att.reshape(b, -1))


class _AttentionProgram(Program):
    name = "test-attention-eager"
    defaults: ClassVar[dict[str, Any]] = {}
    attention = "eager"

    def build(self, config: Mapping[str, Any], fields: Any) -> nn.Module:
        (features,), _ = fields["x"]
        return _Attention(features, self.attention)

    def outputs(self, module: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return module(batch["x"])

    def loss(self, module: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self.outputs(module, batch), batch["y"])


class _SdpaProgram(_AttentionProgram):
    name = "test-attention-sdpa"
    attention = "sdpa"


class _FusedProgram(_AttentionProgram):
    name = "test-attention-fused"
    attention = "fused"


class _ByDeviceProgram(_AttentionProgram):
    name = "test-attention-by-device"
    attention = "by-device"


class _GatherLoss(_AttentionProgram):
    """A hand-written cross-entropy whose backward is a scatter_add (no reproducible kernel)."""

    name = "test-gather-loss"

    def loss(self, module: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logp = F.log_softmax(self.outputs(module, batch), dim=-1)
        return -logp.gather(1, batch["y"].unsqueeze(1)).mean()


@pytest.fixture(scope="module", autouse=True)
def _programs() -> None:
    for program in (_AttentionProgram(), _SdpaProgram(), _FusedProgram(), _ByDeviceProgram(),
                    _GatherLoss()):
        register_program(program, replace=True)


def _spec(program: str, **changes: Any) -> JobSpec:
    return tiny_spec(program=program, config={}, steps=4, checkpoint_interval=2, **changes)


@pytest.mark.parametrize("backend", ["repops", "torch"])
def test_a_program_whose_real_trace_differs_from_its_shape_only_trace_is_refused(
        backend: str) -> None:
    with pytest.raises(TraceMismatch, match="real trace differs") as info:
        admit_job(_spec("test-attention-by-device", backend=backend))
    message = str(info.value)
    assert isinstance(info.value, VerdeInputError) and "\n" not in message
    assert "node " in message  # names the first difference


def test_a_fused_attention_kernel_is_refused_by_name_under_the_torch_backend() -> None:
    with pytest.raises(UnsupportedOperation,
                       match=r"_scaled_dot_product_flash_attention_for_cpu") as info:
        admit_job(_spec("test-attention-fused", backend="torch"))
    assert isinstance(info.value, VerdeInputError)
    # repops computes the same op with its own reproducible kernel: defensible, accepted
    admit_job(_spec("test-attention-fused"))


@pytest.mark.parametrize(("program", "backend"), [
    ("test-attention-eager", "repops"), ("test-attention-eager", "torch"),
    ("test-attention-sdpa", "torch")])
def test_attention_with_dropout_is_accepted_and_defended(program: str, backend: str) -> None:
    # sdpa under a dispatch mode decomposes to the math path with a dropout draw on the job's
    # stream, the same real and shape-only: defensible, so accepted
    spec = _spec(program, backend=backend)
    admit_job(spec, thorough=True)
    honest = Provider(key(f"adm-honest-{program}-{backend}"), "honest")
    other = Provider(key(f"adm-honest2-{program}-{backend}"), "honest-2")
    cheater = CheatingProvider(key(f"adm-cheat-{program}-{backend}"), "cheater",
                               plan=FaultPlan("corrupt_op", step=3, node=0, op=DROPOUT_OP))
    for provider in (honest, other, cheater):
        provider.submit(spec)
    # two honest providers agree to the bit, dropout included
    assert honest.result(spec.job_id).payload == other.result(spec.job_id).payload
    peers = {"a": LocalPeer(cheater), "b": LocalPeer(honest)}
    state = DisputeState(spec, peers["a"].result(spec.job_id), peers["b"].result(spec.job_id))
    verdict = run_dispute(state, peers)
    assert verdict.winner == "b" and verdict.losers == ("a",)
    assert verdict.reason == "recomputed_operator" and verdict.ruling["op"] == DROPOUT_OP


def test_an_unsupported_op_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedOperation, match=r"uses aten\.scatter_add\.default"):
        admit_job(_spec("test-gather-loss"))
    # the same program under the torch backend runs vendor kernels: accepted there
    admit_job(_spec("test-gather-loss", backend="torch"))


def test_a_torch_job_binds_its_platform() -> None:
    spec = _spec("test-attention-eager", backend="torch")
    assert spec.platform == torch_platform() and spec.to_dict()["platform"] == spec.platform
    assert JobSpec.from_mapping(spec.to_dict()).job_id == spec.job_id
    other = {**spec.to_dict(), "platform": "torch 0.0; sparc; cpu kernels NONE"}
    with pytest.raises(VerdeInputError, match="reproducible on one platform only"):
        JobSpec.from_mapping(other)
    repops_job = _spec("test-attention-eager")
    assert "platform" not in repops_job.to_dict()
    with pytest.raises(VerdeInputError, match="backend 'torch' jobs only"):
        JobSpec.from_mapping({**repops_job.to_dict(), "platform": spec.platform})


def test_admission_is_cached_per_shape_and_rechecked_when_thorough() -> None:
    from verde.protocol.graph import admission

    spec = _spec("test-attention-eager", seed=11)
    admit_job(spec)
    assert admission._shape_key(spec) in admission._ADMITTED
    assert admission._shape_key(spec.with_changes(seed=12)) == admission._shape_key(spec)
    assert admission._shape_key(spec.with_changes(batch_size=4)) != admission._shape_key(spec)
