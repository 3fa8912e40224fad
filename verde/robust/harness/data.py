"""Datasets and how they are split over workers.

Digits (scikit-learn's bundled 8x8 handwritten digits, no download) is the default task; any
pair of torch datasets can be used instead (they are materialised as tensors, which suits the
small datasets such simulations use). Splits: i.i.d. (a random partition into equal shards)
and non-i.i.d. by a Dirichlet(alpha) draw of each class's share per worker (Hsu, Qi & Brown
2019, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
Classification"), the split ByzFL and most robustness papers use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class ArrayDataset:
    """Train/test tensors and the number of classes."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        if self.x_train.shape[0] != self.y_train.shape[0] or self.x_train.shape[0] == 0:
            raise ValueError("ArrayDataset: x_train and y_train must be non-empty and of equal "
                             "length")
        if self.x_test.shape[0] != self.y_test.shape[0]:
            raise ValueError("ArrayDataset: x_test and y_test must have equal length")


def load_digits_dataset(test_fraction: float = 0.25, seed: int = 0) -> ArrayDataset:
    """scikit-learn's digits (1797 samples, 64 features in [0, 1], 10 classes), split once."""
    from sklearn.datasets import load_digits

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    n_test = round(test_fraction * len(y))
    test, train = perm[:n_test], perm[n_test:]
    return ArrayDataset(x[train], y[train], x[test], y[test], 10)


def _materialise(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for i in range(len(ds)):
        xi, yi = ds[i]
        xs.append(torch.as_tensor(xi, dtype=torch.float32))
        ys.append(int(yi))
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long)


def from_torch_datasets(train: Any, test: Any, num_classes: int) -> ArrayDataset:
    """Any map-style torch datasets yielding (input, label) pairs."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    xtr, ytr = _materialise(train)
    xte, yte = _materialise(test)
    return ArrayDataset(xtr, ytr, xte, yte, num_classes)


def iid_split(num_samples: int, workers: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random partition of range(num_samples) into ``workers`` near-equal shards."""
    if workers < 1 or num_samples < workers:
        raise ValueError(f"iid_split: need 1 <= workers <= samples, got {workers}, "
                         f"{num_samples}")
    return [np.sort(s) for s in np.array_split(rng.permutation(num_samples), workers)]


def dirichlet_split(labels: np.ndarray, workers: int, alpha: float,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Each class's samples divided over workers in Dirichlet(alpha) proportions.

    Small alpha = very heterogeneous. Every worker is guaranteed at least one sample (an empty
    worker has no gradient), by moving one sample from the largest shard when needed.
    """
    if alpha <= 0:
        raise ValueError(f"dirichlet_split: alpha must be > 0, got {alpha}")
    if workers < 1 or len(labels) < workers:
        raise ValueError(f"dirichlet_split: need 1 <= workers <= samples, got {workers}")
    shards: list[list[int]] = [[] for _ in range(workers)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        props = rng.dirichlet(np.full(workers, alpha))
        cuts = (np.cumsum(props) * len(idx)).astype(int)[:-1]
        for w, part in enumerate(np.split(idx, cuts)):
            shards[w].extend(int(i) for i in part)
    for w in range(workers):
        if not shards[w]:
            donor = max(range(workers), key=lambda j: len(shards[j]))
            shards[w].append(shards[donor].pop())
    return [np.sort(np.array(s, dtype=np.int64)) for s in shards]
