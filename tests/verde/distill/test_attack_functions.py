"""The attack functions do what they say (cheap unit tests, no trained models)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from verde.distill.attacks import (
    FractionalAttack,
    OutputAttack,
    add_trigger,
    additive_noise,
    quantised_copy,
    random_label_switch,
    top2_average,
    top2_swap,
)
from verde.distill.errors import DistillArgumentError


def _probs(n: int = 500, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(n, 10, generator=g), dim=1)


@pytest.mark.parametrize("tamper", [top2_swap, top2_average, random_label_switch])
def test_label_changing_tampers_change_every_label(tamper: object) -> None:
    probs = _probs()
    out = tamper(probs, torch.Generator().manual_seed(0))  # type: ignore[operator]
    assert out.shape == probs.shape
    torch.testing.assert_close(out.sum(1), torch.ones(500), rtol=0, atol=1e-6)
    assert bool((out.argmax(1) != probs.argmax(1)).all())


def test_top2_swap_makes_runner_up_the_label() -> None:
    probs = _probs()
    out = top2_swap(probs, torch.Generator())
    assert torch.equal(out.argmax(1), probs.topk(2, 1).indices[:, 1])
    assert torch.equal(out.sort(1).values, probs.sort(1).values)


def test_noise_keeps_rows_probabilities_and_sigma_checked() -> None:
    out = additive_noise(0.5)(_probs(), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.sum(1), torch.ones(500), rtol=0, atol=1e-5)
    with pytest.raises(DistillArgumentError, match="sigma"):
        additive_noise(0.0)


def test_fractional_attack_cheats_on_about_p() -> None:
    probs = _probs(4000)
    attack = FractionalAttack(OutputAttack("swap", top2_swap), 0.1)
    out = attack.serve(torch.zeros(4000, 1), probs, torch.Generator().manual_seed(0))
    changed = out.argmax(1) != probs.argmax(1)
    assert attack.last_mask is not None and torch.equal(changed, attack.last_mask)
    assert 0.08 <= float(changed.float().mean()) <= 0.12
    assert attack.name == "swap@p=0.1"
    with pytest.raises(DistillArgumentError, match="fraction"):
        FractionalAttack(OutputAttack("swap", top2_swap), 1.0)


def test_quantised_copy_rounds_weights_to_grid() -> None:
    model = nn.Linear(8, 4)
    q = quantised_copy(model, bits=3)
    w = q.weight.detach()
    scale = model.weight.detach().abs().max() / 3
    torch.testing.assert_close(w / scale, torch.round(w / scale))
    assert not torch.equal(w, model.weight.detach())
    with pytest.raises(DistillArgumentError, match="bits"):
        quantised_copy(model, bits=1)


def test_trigger_patch() -> None:
    x = torch.zeros(2, 1, 8, 8)
    t = add_trigger(x)
    assert float(t.sum()) == 2 * 2 and float(t[0, 0, -1, -2:].min()) == 1.0
    assert float(x.sum()) == 0.0
    with pytest.raises(DistillArgumentError, match="image"):
        add_trigger(torch.zeros(2, 64))
