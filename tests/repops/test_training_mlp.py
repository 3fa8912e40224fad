"""End to end: an MLP on scikit-learn's digits trained under repops.reproducible() with
repops AdamW. The final state must not depend on thread count, weight layout or the CPU
instruction set numba compiles for, and must be close to plain torch's."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import repops
from repops.dispatch.trace import default_digest
from repops.optim import AdamW, clip_grad_norm_
from tests.repops.models import MLP

#: One torch and numba thread unless a test asks for more (see tests/repops/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")

STEPS, BATCH = 25, 64


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standardised digits, fixed 1437/360 split (no download: bundled with sklearn)."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = torch.from_numpy(x[order]), torch.from_numpy(y[order])
    return x[:1437], y[:1437], x[1437:], y[1437:]


def state_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode() + b"\0" + default_digest(p.detach()))
    return h.hexdigest()


def train(
    steps: int = STEPS,
    use_repops: bool = True,
    layout: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> MLP:
    """AdamW on fixed minibatches; ``layout`` re-stores each weight (same values)."""
    x, y, _, _ = digits()
    torch.manual_seed(0)
    model = MLP(64, 64, 10)
    if layout is not None:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.data = layout(p.data)
    opt = (AdamW if use_repops else torch.optim.AdamW)(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, len(x), (BATCH,), generator=gen) for _ in range(steps)]
    for rows in batches:
        xb, yb = x[rows], y[rows]
        opt.zero_grad()
        if use_repops:
            with repops.reproducible():
                F.cross_entropy(model(xb), yb).backward()
                clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
        else:
            F.cross_entropy(model(xb), yb).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
    return model


def accuracy(model: MLP, use_repops: bool) -> float:
    _, _, xt, yt = digits()
    with torch.no_grad():
        if use_repops:
            with repops.reproducible():
                pred = model(xt).argmax(dim=1)
        else:
            pred = model(xt).argmax(dim=1)
    return float((pred == yt).float().mean())


@pytest.fixture(scope="module")
def reference_digest(with_threads: Callable[..., str]) -> str:
    return with_threads(1, lambda: state_digest(train()))


def test_same_final_state_with_one_and_two_threads(
    reference_digest: str, with_threads: Callable[..., str]
) -> None:
    two = with_threads(2, lambda: state_digest(train()))
    assert two == reference_digest


def test_same_final_state_with_transposed_weight_storage(reference_digest: str) -> None:
    transposed = train(layout=lambda w: w.t().contiguous().t())
    assert transposed.fc1.weight.stride() == (1, 64)
    assert state_digest(transposed) == reference_digest


def test_a_different_run_gives_a_different_digest(reference_digest: str) -> None:
    """Negative: the digest comparison can fail (one step fewer)."""
    assert state_digest(train(steps=STEPS - 1)) != reference_digest


def test_per_row_outputs_do_not_depend_on_batch_size_or_position() -> None:
    x, _, _, _ = digits()
    torch.manual_seed(0)
    model = MLP(64, 64, 10)
    rows = x[:64]
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad(), repops.reproducible():
        full = model(rows)
        singles = torch.cat([model(rows[i : i + 1]) for i in range(64)])
        sevens = torch.cat([model(rows[i : i + 7]) for i in range(0, 63, 7)] + [model(rows[63:])])
        permuted = model(rows[perm])
        per_row_loss = F.cross_entropy(full, torch.arange(64) % 10, reduction="none")
        per_row_loss_perm = F.cross_entropy(permuted, (torch.arange(64) % 10)[perm],
                                            reduction="none")
    assert torch.equal(full, singles)
    assert torch.equal(full, sevens)
    assert torch.equal(full[perm], permuted)
    assert torch.equal(per_row_loss[perm], per_row_loss_perm)


def test_close_to_plain_torch() -> None:
    ours = train()
    theirs = train(use_repops=False)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.slow
def test_same_test_accuracy_as_plain_torch() -> None:
    ours = train(steps=300)
    theirs = train(steps=300, use_repops=False)
    acc_ours, acc_theirs = accuracy(ours, True), accuracy(theirs, False)
    assert acc_ours > 0.9
    assert abs(acc_ours - acc_theirs) <= 0.01


@pytest.mark.slow
def test_same_final_state_with_numba_compiled_for_a_generic_cpu(
    reference_digest: str, generic_numba_cache: Path, run_compiled: Callable[..., str]
) -> None:
    out = run_compiled(
        "from tests.repops.test_training_mlp import state_digest, train; "
        "print(state_digest(train()))",
        generic_numba_cache, NUMBA_CPU_NAME="generic", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
    )
    assert out.strip().splitlines()[-1] == reference_digest
