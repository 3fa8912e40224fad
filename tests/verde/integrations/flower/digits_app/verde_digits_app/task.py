"""The model and data: multinomial logistic regression in numpy, full-batch local epochs.

numpy only (no torch), so that each ClientApp process (one per message in Flower's
deployment engine) starts quickly. Data come from an .npz the test writes.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

CLASSES, FEATURES = 10, 64


def initial_arrays() -> ArrayRecord:
    return ArrayRecord({"w": Array(np.zeros((CLASSES, FEATURES), np.float32)),
                        "b": Array(np.zeros(CLASSES, np.float32))})


def train(arrays: ArrayRecord, x: np.ndarray, y: np.ndarray, epochs: int = 20,
          lr: float = 0.5) -> ArrayRecord:
    w, b = arrays["w"].numpy().copy(), arrays["b"].numpy().copy()
    onehot = np.eye(CLASSES, dtype=np.float32)[y]
    for _ in range(epochs):
        z = x @ w.T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(y)
        w -= lr * (g.T @ x)
        b -= lr * g.sum(axis=0)
    return ArrayRecord({"w": Array(w), "b": Array(b)})


def accuracy(arrays: ArrayRecord, x: np.ndarray, y: np.ndarray) -> float:
    w, b = arrays["w"].numpy(), arrays["b"].numpy()
    with np.errstate(all="ignore"):
        return float(((x @ w.T + b).argmax(axis=1) == y).mean())
