"""Fused CPU attention (repops/kernels/attention.py) against the spec/linalg.md §4 reference.

The reference uses the elementwise references ``exp_f32_reference`` / ``log_f32_reference``
(repops/reference/elementwise.py), so these tests also tie the kernel's use of ``exp_f32`` and
``log_f32`` to spec/elementwise.md. An end-to-end test routes F.scaled_dot_product_attention
through a tiny dispatch mode to check that the kernels take torch's own arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from repops.errors import UnsupportedInputError
from repops.kernels import attention as A
from repops.kernels.attention import (
    AttentionShapeError,
    flash_attention_for_cpu,
    flash_attention_for_cpu_backward,
)
from repops.reference.linalg_attention import attention_backward_reference, attention_reference

AssertSameBits = Callable[[torch.Tensor, torch.Tensor], None]  # conftest fixture type
Rand = Callable[..., torch.Tensor]  # conftest fixture type
Qkv = Callable[..., tuple[torch.Tensor, ...]]  # the qkv fixture below


@pytest.fixture(scope="session")
def qkv(rand: Rand) -> Qkv:
    """``qkv(b, h, nl, ns, e, ev, dtype=...)``: seeded query, key and value tensors."""

    def build(b: int = 2, h: int = 2, nl: int = 5, ns: int = 6, e: int = 8, ev: int = 3,
              dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
        return (rand(b, h, nl, e, dtype=dtype, seed=1), rand(b, h, ns, e, dtype=dtype, seed=2),
                rand(b, h, ns, ev, dtype=dtype, seed=3))

    return build


VARIANTS = ["plain", "causal", "float_mask", "bool_mask_and_scale"]


def variant_kwargs(name: str, rand: Rand) -> dict[str, Any]:
    """The argument sets of the reference test (masks drawn from fixed seeds)."""
    return {
        "plain": {},
        "causal": {"is_causal": True},
        "float_mask": {"attn_mask": rand(5, 6, seed=4)},
        "bool_mask_and_scale": {"attn_mask": rand(2, 1, 1, 6, seed=5) > 0, "scale": 0.3},
    }[name]


def _call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kw: dict[str, Any]) -> Any:
    return flash_attention_for_cpu(q, k, v, 0.0, kw.get("is_causal", False),
                                   attn_mask=kw.get("attn_mask"), scale=kw.get("scale"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_and_backward_match_reference(
    variant: str, rand: Rand, assert_same_bits: AssertSameBits, qkv: Qkv
) -> None:
    kw = variant_kwargs(variant, rand)
    q, k, v = qkv()
    out, lse = _call(q, k, v, kw)
    ref_out, ref_lse = attention_reference(q, k, v, **kw)
    assert_same_bits(out, ref_out)
    assert_same_bits(lse, ref_lse)
    d_o = rand(*out.shape, seed=6)
    grads = flash_attention_for_cpu_backward(d_o, q, k, v, out, lse, 0.0,
                                             kw.get("is_causal", False),
                                             attn_mask=kw.get("attn_mask"), scale=kw.get("scale"))
    for got, ref in zip(grads, attention_backward_reference(d_o, q, k, v, out, **kw), strict=True):
        assert_same_bits(got, ref)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_matches_reference(
    dtype: torch.dtype, assert_same_bits: AssertSameBits, qkv: Qkv
) -> None:
    q, k, v = qkv(1, 1, 3, 4, 4, 4, dtype=dtype)
    out, lse = _call(q, k, v, {"is_causal": True})
    ref_out, ref_lse = attention_reference(q, k, v, is_causal=True)
    assert out.dtype == dtype and lse.dtype == torch.float32
    assert_same_bits(out, ref_out)
    assert_same_bits(lse, ref_lse)


def test_fully_masked_row_is_zero_with_minus_inf_logsumexp(
    assert_same_bits: AssertSameBits, qkv: Qkv
) -> None:
    q, k, v = qkv(1, 1, 3, 4, 4, 2)
    mask = torch.zeros(3, 4)
    mask[1] = -torch.inf
    out, lse = _call(q, k, v, {"attn_mask": mask})
    assert torch.equal(out[0, 0, 1], torch.zeros(2)) and lse[0, 0, 1] == -torch.inf
    assert torch.isfinite(out[0, 0, 0]).all()
    ref_out, ref_lse = attention_reference(q, k, v, attn_mask=mask)
    assert_same_bits(out, ref_out)
    assert_same_bits(lse, ref_lse)


def test_close_to_torch_sdpa(rand: Rand, qkv: Qkv) -> None:
    q, k, v = qkv(2, 3, 7, 7, 16, 16)
    for causal in (False, True):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        ref = F.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)
        out, lse = flash_attention_for_cpu(q, k, v, 0.0, causal)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        d_o = rand(*out.shape, seed=7)
        ref.backward(d_o)
        grads = flash_attention_for_cpu_backward(d_o, q, k, v, out, lse, 0.0, causal)
        for mine, theirs in zip(grads, (qq.grad, kk.grad, vv.grad), strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


class _RouteAttention(TorchDispatchMode):
    """Sends the two fused ops to repops (what repops.dispatch does), counting the calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kernel = A.ATEN_KERNELS.get(str(func))
        if kernel is not None:
            self.calls.append(str(func))
            return kernel(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


def test_sdpa_routes_to_the_fused_kernels_with_torch_arguments(
    rand: Rand, assert_same_bits: AssertSameBits, qkv: Qkv
) -> None:
    q, k, v = qkv(1, 2, 4, 4, 8, 8)
    mask = rand(4, 4, seed=8) > -0.5
    qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
    mode = _RouteAttention()
    with mode:
        out = F.scaled_dot_product_attention(qq, kk, vv, attn_mask=mask)
        out.backward(torch.ones_like(out))
    assert mode.calls == [
        "aten._scaled_dot_product_flash_attention_for_cpu.default",
        "aten._scaled_dot_product_flash_attention_for_cpu_backward.default",
    ]
    # torch turned the bool mask into 0/-inf floats; the result equals the direct float call.
    fmask = torch.zeros(4, 4).masked_fill(~mask, -torch.inf)
    direct, _ = flash_attention_for_cpu(q, k, v, attn_mask=fmask)
    assert_same_bits(out.detach(), direct)


def test_threads_batch_and_layout_change_no_bit(
    assert_same_bits: AssertSameBits, num_threads: Callable[[int], None], qkv: Qkv
) -> None:
    q, k, v = qkv(3, 2, 6, 6, 8, 8)
    num_threads(1)
    one, _ = _call(q, k, v, {"is_causal": True})
    num_threads(2)
    two, _ = _call(q, k, v, {"is_causal": True})
    assert_same_bits(one, two)
    sub, _ = _call(q[1:2], k[1:2], v[1:2], {"is_causal": True})
    assert_same_bits(sub, two[1:2])
    # (B, L, H, E) storage seen through a transpose, as attention modules produce it.
    qt = q.transpose(1, 2).contiguous().transpose(1, 2)
    moved, _ = _call(qt, k, v, {"is_causal": True})
    assert_same_bits(moved, two)


def test_bad_inputs_raise_clear_errors(qkv: Qkv) -> None:
    q, k, v = qkv()
    with pytest.raises(UnsupportedInputError, match="dropout_p"):
        flash_attention_for_cpu(q, k, v, 0.1)
    with pytest.raises(UnsupportedInputError, match="float64"):
        flash_attention_for_cpu(q.double(), k.double(), v.double())
    with pytest.raises(UnsupportedInputError, match="head counts"):
        flash_attention_for_cpu(q, k[:, :1], v[:, :1])
    with pytest.raises(AttentionShapeError, match="4-D"):
        flash_attention_for_cpu(q[0], k[0], v[0])
    with pytest.raises(AttentionShapeError, match="broadcast"):
        flash_attention_for_cpu(q, k, v, attn_mask=torch.zeros(3, 3))
    with pytest.raises(AttentionShapeError, match="attn_mask must be bool"):
        flash_attention_for_cpu(q, k, v, attn_mask=torch.zeros(5, 6, dtype=torch.float64))
    out, lse = flash_attention_for_cpu(q, k, v)
    with pytest.raises(AttentionShapeError, match="grad_out"):
        flash_attention_for_cpu_backward(out[:, :, :2], q, k, v, out, lse, 0.0, False)
    with pytest.raises(UnsupportedInputError, match="dropout_p"):
        flash_attention_for_cpu_backward(out, q, k, v, out, lse, 0.5, False)


@pytest.mark.parametrize("variant", VARIANTS)
def test_per_head_and_whole_batch_schedules_agree(
    variant: str, rand: Rand, assert_same_bits: AssertSameBits, qkv: Qkv,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One head per parallel item (attention_heads) and the whole batch at once give the same
    bits, forward and backward; the schedule is chosen by head count against thread count."""
    kw = variant_kwargs(variant, rand)
    q, k, v = qkv()
    qt = q.transpose(1, 2).contiguous().transpose(1, 2)  # a (B, L, H, E) layout
    d_o = rand(2, 2, 5, 3, seed=6)
    runs = {}
    for per_head in (True, False):
        monkeypatch.setattr(A._Problem, "per_head", lambda self, flag=per_head: flag)
        out, lse = _call(qt, k, v, kw)
        grads = flash_attention_for_cpu_backward(d_o, qt, k, v, out, lse, 0.0,
                                                 kw.get("is_causal", False),
                                                 attn_mask=kw.get("attn_mask"),
                                                 scale=kw.get("scale"))
        runs[per_head] = (out, lse, *grads)
    for a, b in zip(runs[True], runs[False], strict=True):
        assert_same_bits(a, b)
    assert not torch.equal(runs[True][0], _call(qt, k, v + 1, kw)[0])  # the comparison can fail


def test_schedule_follows_heads_and_threads(qkv: Qkv, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule itself, at thread counts set here (a one-core machine cannot run two)."""
    q, k, v = qkv(1, 1, 3, 4, 4, 4)
    one_head = A._Problem(q, k, v, 0.0, False, None, None)
    monkeypatch.setattr(A, "thread_count", lambda: 1)
    assert one_head.per_head()
    monkeypatch.setattr(A, "thread_count", lambda: 2)
    assert not one_head.per_head()
    assert A._Problem(*qkv(2, 1, 3, 4, 4, 4), 0.0, False, None, None).per_head()
