"""End to end: a small GPT (causal SDPA, LayerNorm, GELU MLP) trained under
repops.reproducible() with repops AdamW and gradient clipping; the final state must not depend
on thread count, weight layout or the instruction set numba compiles for."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import repops
from repops.dispatch.trace import default_digest
from repops.optim import AdamW, clip_grad_norm_
from tests.repops.models import TinyGPT, gpt_loss

#: One torch and numba thread unless a test asks for more (see tests/repops/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")

STEPS, BATCH, SEQ, VOCAB = 20, 8, 16, 32


def corpus(n: int = 64) -> torch.Tensor:
    """Sequences with learnable structure: token t+1 = (a * token t + b) mod VOCAB."""
    g = torch.Generator().manual_seed(0)
    start = torch.randint(0, VOCAB, (n, 1), generator=g)
    a = torch.randint(1, 4, (n, 1), generator=g)
    steps = torch.arange(SEQ + 1).unsqueeze(0)
    return (start + a * steps) % VOCAB


def state_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode() + b"\0" + default_digest(p.detach()))
    return h.hexdigest()


def new_model() -> TinyGPT:
    torch.manual_seed(0)
    return TinyGPT(vocab=VOCAB, width=32, heads=2, layers=2, seq=SEQ)


def train(
    steps: int = STEPS, use_repops: bool = True,
    layout: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> TinyGPT:
    data = corpus()
    model = new_model()
    if layout is not None:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.data = layout(p.data)
    opt = (AdamW if use_repops else torch.optim.AdamW)(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, len(data), (BATCH,), generator=g) for _ in range(steps)]
    for rows in batches:
        opt.zero_grad()
        if use_repops:
            with repops.reproducible():
                gpt_loss(model, data[rows]).backward()
                clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
        else:
            gpt_loss(model, data[rows]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    return model


@pytest.fixture(scope="module")
def reference_digest(with_threads: Callable[..., str]) -> str:
    return with_threads(1, lambda: state_digest(train()))


def test_same_final_state_with_two_threads(
    reference_digest: str, with_threads: Callable[..., str]
) -> None:
    assert with_threads(2, lambda: state_digest(train())) == reference_digest


def test_same_final_state_with_transposed_weight_storage(reference_digest: str) -> None:
    model = train(layout=lambda w: w.t().contiguous().t())
    assert state_digest(model) == reference_digest


def test_training_moved_the_state(reference_digest: str) -> None:
    """Negative: the digest sees a change (the untrained model differs)."""
    assert state_digest(new_model()) != reference_digest


def test_per_row_logits_do_not_depend_on_batch_size_or_position() -> None:
    model = new_model()
    data = corpus()[:, :SEQ]
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), repops.reproducible():
        full = model(data)
        singles = torch.cat([model(data[i : i + 1]) for i in range(len(data))])
        sevens = torch.cat([model(data[i : i + 7]) for i in range(0, len(data), 7)])
        permuted = model(data[perm])
    assert torch.equal(full, singles)
    assert torch.equal(full, sevens)
    assert torch.equal(full[perm], permuted)


def test_close_to_plain_torch_and_the_loss_falls() -> None:
    ours, theirs = train(), train(use_repops=False)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        if name.endswith("qkv.bias"):
            # The key bias has an exactly-zero gradient in exact arithmetic (softmax ignores
            # a constant added to every score of a row); both runs see only rounding noise
            # there, which Adam's g / sqrt(v) scales up to full-size steps. Compare q and v.
            width = a.shape[0] // 3
            a = torch.cat([a[:width], a[2 * width :]])
            b = torch.cat([b[:width], b[2 * width :]])
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5, msg=name)
    data, fresh = corpus(), new_model()
    with torch.no_grad(), repops.reproducible():
        before = float(gpt_loss(fresh, data))
        after = float(gpt_loss(ours, data))
    assert after < before - 0.3


@pytest.mark.slow
def test_same_final_state_with_numba_compiled_for_a_generic_cpu(
    reference_digest: str, generic_numba_cache: Path, run_compiled: Callable[..., str]
) -> None:
    out = run_compiled(
        "import torch; torch.set_num_threads(1); "
        "from tests.repops.test_training_gpt import state_digest, train; "
        "print(state_digest(train()))",
        generic_numba_cache, NUMBA_CPU_NAME="generic", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
    )
    assert out.strip().splitlines()[-1] == reference_digest
