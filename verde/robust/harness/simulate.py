"""D-SGD with worker momentum under attack, and worst-case accuracy over attacks.

The setting of the robustness literature (Karimireddy et al. 2021; Allouah et al. 2023; the
ByzFL benchmark): n workers, the first n-f honest, the last f Byzantine. Each round every
honest worker computes a minibatch gradient on its own shard and updates its local Polyak
momentum m_i <- beta m_i + (1 - beta) g_i; the Byzantine workers see the honest momenta and
send what the attack makes of them (label flipping instead trains honestly on flipped
labels); the server aggregates the n vectors with the defence and takes an SGD step. The
score of a defence is its *worst* final test accuracy over the attacks.

Per-worker gradients are computed in one call with ``torch.func.vmap(grad(...))``, so any
``torch.nn.Module`` works as the model; the default is multinomial logistic regression.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from verde.robust.attacks import Attack, LabelFlipping
from verde.robust.base import Aggregator
from verde.robust.harness.data import ArrayDataset, dirichlet_split, iid_split
from verde.robust.registry import make_attack

ModelFactory = Callable[[ArrayDataset], nn.Module]


@dataclass(frozen=True)
class SimulationConfig:
    """One training run. ``split`` is "iid" or "dirichlet" (with ``alpha``)."""

    n: int = 17
    f: int = 4
    rounds: int = 100
    batch_size: int = 32
    lr: float = 0.5
    momentum: float = 0.9
    weight_decay: float = 1e-4
    split: str = "iid"
    alpha: float = 0.5
    seed: int = 0
    root_size: int = 100  # FLTrust: the server's own clean samples

    def __post_init__(self) -> None:
        if self.n < 1 or not 0 <= self.f < self.n:
            raise ValueError(f"SimulationConfig: need n >= 1 and 0 <= f < n, got n={self.n}, "
                             f"f={self.f}")
        if self.split not in ("iid", "dirichlet"):
            raise ValueError(f"SimulationConfig: split must be 'iid' or 'dirichlet', got "
                             f"{self.split!r}")
        if self.rounds < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("SimulationConfig: rounds, batch_size and lr must be positive")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"SimulationConfig: momentum must be in [0, 1), got "
                             f"{self.momentum}")


@dataclass
class SimulationResult:
    """Final test accuracy (0..1) of one run; ``diverged`` if the model became non-finite."""

    accuracy: float
    diverged: bool
    history: list[float] = field(default_factory=list)


def logistic_regression(dataset: ArrayDataset) -> nn.Module:
    """The default model: one linear layer on the flattened input."""
    features = int(np.prod(dataset.x_train.shape[1:]))
    return nn.Sequential(nn.Flatten(), nn.Linear(features, dataset.num_classes))


def small_mlp(dataset: ArrayDataset, hidden: int = 32) -> nn.Module:
    """A one-hidden-layer MLP, for tasks a linear model cannot fit."""
    features = int(np.prod(dataset.x_train.shape[1:]))
    return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(),
                         nn.Linear(hidden, dataset.num_classes))


class _Trainer:
    """Flat-parameter view of a model with batched per-worker gradients."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = [k for k, _ in model.named_parameters()]
        self.shapes = [p.shape for _, p in model.named_parameters()]
        self.sizes = [p.numel() for _, p in model.named_parameters()]
        self.theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()

        def loss(params: dict[str, torch.Tensor], xb: torch.Tensor,
                 yb: torch.Tensor) -> torch.Tensor:
            out = functional_call(self.model, params, (xb,))
            return nn.functional.cross_entropy(out, yb)

        self._grads = vmap(grad(loss), in_dims=(None, 0, 0))

    def params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(theta, self.sizes)
        return {k: v.reshape(s) for k, v, s in zip(self.names, parts, self.shapes, strict=True)}

    def gradients(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """(workers, batch, ...) inputs -> (workers, P) flat gradients."""
        g = self._grads(self.params(self.theta), xb, yb)
        return torch.cat([g[k].reshape(xb.shape[0], -1) for k in self.names], dim=1)

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        out = functional_call(self.model, self.params(self.theta), (x,))
        return float((out.argmax(dim=1) == y).float().mean())


class _LogisticTrainer(_Trainer):
    """Closed-form per-worker gradients for the default logistic model (much faster than
    vmap for a model this small): dL/dW = X^T (softmax(XW^T + b) - Y) / B, dL/db = mean."""

    def gradients(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        params = self.params(self.theta)
        w, bias = params[self.names[0]], params[self.names[1]]
        x = xb.reshape(xb.shape[0], xb.shape[1], -1)
        probs = torch.softmax(x @ w.T + bias, dim=2)
        probs[torch.arange(x.shape[0])[:, None], torch.arange(x.shape[1])[None, :], yb] -= 1.0
        probs /= x.shape[1]
        gw = probs.transpose(1, 2) @ x  # (workers, classes, features)
        return torch.cat([gw.reshape(x.shape[0], -1), probs.sum(dim=1)], dim=1)


class _BoundDefence:
    """The defence with this round's extra arguments (FLTrust's reference) bound, as an
    adaptive attack sees it: a plain ``rule(vectors)`` callable that deep-copies cleanly."""

    def __init__(self, aggregator: Aggregator, kwargs: dict[str, Any]) -> None:
        self.aggregator = aggregator
        self.kwargs = kwargs

    def __call__(self, inputs: Any) -> Any:
        return self.aggregator(inputs, **self.kwargs)


def simulate(dataset: ArrayDataset, aggregator: Aggregator, attack: Attack | str | None = None,
             config: SimulationConfig | None = None,
             model_fn: ModelFactory | None = None) -> SimulationResult:
    """Train with ``aggregator`` as the server's rule while the last f workers run ``attack``."""
    cfg = config or SimulationConfig()
    atk = make_attack(attack) if isinstance(attack, str) else attack
    if cfg.f > 0 and atk is None:
        raise ValueError("simulate: f > 0 needs an attack (or use f=0 for the attack-free run)")
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    if model_fn is None:
        trainer: _Trainer = _LogisticTrainer(logistic_regression(dataset))
    else:
        trainer = _Trainer(model_fn(dataset))
    h = cfg.n - cfg.f
    y_np = dataset.y_train.numpy()
    root = rng.choice(len(y_np), size=min(cfg.root_size, len(y_np)), replace=False)
    if cfg.split == "iid":
        shards = iid_split(len(y_np), h, rng)
    else:
        shards = dirichlet_split(y_np, h, cfg.alpha, rng)
    flipping = atk is not None and atk.kind == "data"
    p = trainer.theta.numel()
    mom = torch.zeros(h, p)
    byz_mom = torch.zeros(cfg.f, p)
    server_mom = torch.zeros(p)
    b = cfg.batch_size
    history: list[float] = []
    for _ in range(cfg.rounds):
        kwargs: dict[str, Any] = {}
        if aggregator.needs_reference:  # FLTrust: the server's gradient on its clean samples
            ridx = torch.from_numpy(root[rng.integers(0, len(root), b)])[None]
            gs = trainer.gradients(dataset.x_train[ridx], dataset.y_train[ridx])[0]
            server_mom = cfg.momentum * server_mom + (1 - cfg.momentum) * gs
            kwargs["reference"] = server_mom
        idx = np.stack([s[rng.integers(0, len(s), b)] for s in shards])
        idx_t = torch.from_numpy(idx)
        g = trainer.gradients(dataset.x_train[idx_t], dataset.y_train[idx_t])
        mom = cfg.momentum * mom + (1 - cfg.momentum) * g
        if cfg.f == 0:
            sent = mom
        elif flipping:
            bidx = torch.from_numpy(idx[np.arange(cfg.f) % h])
            yb = LabelFlipping.flip(dataset.y_train[bidx], dataset.num_classes)
            gb = trainer.gradients(dataset.x_train[bidx], yb)
            byz_mom = cfg.momentum * byz_mom + (1 - cfg.momentum) * gb
            sent = torch.cat([mom, byz_mom])
        elif atk is not None:
            defence = _BoundDefence(aggregator, kwargs)  # adaptive attacks probe the real rule
            sent = torch.cat([mom, atk(mom, cfg.f, aggregator=defence).reshape(cfg.f, p)])
        with np.errstate(all="ignore"):
            update = aggregator(sent, **kwargs)
        trainer.theta = trainer.theta * (1 - cfg.lr * cfg.weight_decay) - cfg.lr * update
        if not torch.isfinite(trainer.theta).all():
            return SimulationResult(accuracy=0.0, diverged=True, history=history)
    acc = trainer.accuracy(dataset.x_test, dataset.y_test)
    history.append(acc)
    return SimulationResult(accuracy=acc, diverged=False, history=history)


def worst_case(dataset: ArrayDataset, make_defence: Callable[[], Aggregator],
               attacks: Sequence[str], config: SimulationConfig | None = None,
               model_fn: ModelFactory | None = None) -> dict[str, float]:
    """Accuracy under each attack (fresh defence and attack each run) and their minimum."""
    cfg = config or SimulationConfig()
    out: dict[str, float] = {}
    for name in attacks:
        res = simulate(dataset, make_defence(), make_attack(name), cfg, model_fn)
        out[name] = res.accuracy
    out["worst"] = min(out.values()) if out else math.nan
    return out


def evaluate_defences(dataset: ArrayDataset, defences: dict[str, Callable[[], Aggregator]],
                      attacks: Sequence[str], config: SimulationConfig | None = None,
                      model_fn: ModelFactory | None = None) -> dict[str, dict[str, float]]:
    """``worst_case`` for every named defence; a defence whose (n, f) condition fails is
    reported with NaN accuracies and the error under the key "error" is left out."""
    cfg = config or SimulationConfig()
    table: dict[str, dict[str, float]] = {}
    for name, make in defences.items():
        try:
            make()(torch.zeros(cfg.n, 2))
        except ValueError:
            table[name] = {"worst": math.nan}
            continue
        table[name] = worst_case(dataset, make, attacks, cfg, model_fn)
    return table


def fresh(aggregator: Aggregator) -> Callable[[], Aggregator]:
    """A factory returning deep copies of a configured aggregator (one per run)."""
    return lambda: copy.deepcopy(aggregator)
