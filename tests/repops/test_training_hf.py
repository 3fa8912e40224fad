"""transformers models built from tiny configs (random weights, no download) under strict
repops.reproducible(). GPT-2 and BERT run forward and backward with no missing op, in eval
mode and in train mode (where attention dropout makes torch take the math SDPA path through
``aten._safe_softmax`` and Philox dropout), and two seeded runs give the same gradient bits."""

from __future__ import annotations

import warnings

import pytest
import torch

import repops

#: Ops these models reach that have no repops kernel (none since _safe_softmax landed).
KNOWN_MISSING: frozenset[str] = frozenset()

transformers = pytest.importorskip("transformers")


def _gpt2() -> torch.nn.Module:
    config = transformers.GPT2Config(
        n_layer=1, n_embd=32, n_head=2, n_positions=16, vocab_size=64,
        bos_token_id=0, eos_token_id=0,
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config)


def _bert() -> torch.nn.Module:
    config = transformers.BertConfig(
        num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64,
        vocab_size=64, max_position_embeddings=16,
    )
    torch.manual_seed(0)
    return transformers.BertForMaskedLM(config)


@pytest.mark.parametrize("build", [_gpt2, _bert], ids=["gpt2", "bert"])
def test_train_mode_runs_strictly_and_reproducibly(build: object) -> None:
    model = build()  # type: ignore[operator]
    model.train()
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with repops.reproducible(strict=False, seed=123) as loose:
            model(ids, labels=ids).loss.backward()
    missing = set(loose.nonreproducible_ops)
    assert missing <= KNOWN_MISSING, f"new missing ops: {missing - KNOWN_MISSING}"
    model.zero_grad()
    if missing:
        with pytest.raises(repops.UnsupportedOpError) as info, repops.reproducible(seed=123):
            model(ids, labels=ids).loss.backward()
        assert info.value.op in missing
        return
    grads = []
    for _ in range(2):
        model.zero_grad()
        with repops.reproducible(seed=123):
            model(ids, labels=ids).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


@pytest.mark.parametrize("build", [_gpt2, _bert], ids=["gpt2", "bert"])
def test_eval_outputs_and_grads_close_to_plain_torch(build: object) -> None:
    model = build()  # type: ignore[operator]
    model.eval()
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    with repops.reproducible():
        ours = model(ids, labels=ids).loss
        ours.backward()
    our_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    theirs = model(ids, labels=ids).loss
    theirs.backward()
    their_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    for a, b in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_without_a_seed_dropout_is_refused_and_named() -> None:
    model = _gpt2()
    model.train()
    model.transformer.h[0].attn.attn_dropout.p = 0.0  # keep the fused attention path
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    with pytest.raises(repops.UnsupportedOpError, match=r"aten\.(bernoulli|native_dropout)"), \
            repops.reproducible():
        model(ids)
