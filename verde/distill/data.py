"""scikit-learn's bundled digits (8x8 images, 10 classes) split into the sets a client needs.

The digits ship inside scikit-learn, so nothing is downloaded. A client of an outsourced
inference service needs four disjoint sets: data the service model was trained on (the client
owns the model and can also distil from it), a validation slice for early stopping, clean data to
calibrate the detector's false-positive rate on, and held-out clean data to measure it on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from verde.distill._checks import check_rate

DIGITS_PIXEL_MAX = 16.0


@dataclass(frozen=True)
class Split:
    """Inputs ``x`` (N, 1, 8, 8) float32 in [0, 1] and integer labels ``y`` (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class DigitsSplits:
    """Disjoint, stratified splits of the digits data set."""

    train: Split
    val: Split
    calib: Split
    test: Split


def load_digit_splits(
    seed: int = 0,
    calib_fraction: float = 0.25,
    test_fraction: float = 0.25,
    val_fraction: float = 0.1,
) -> DigitsSplits:
    """Load digits and split them (stratified by label, shuffled with ``seed``).

    Fractions are of the whole data set; the train split gets what is left.
    """
    for name, value in (
        ("calib_fraction", calib_fraction),
        ("test_fraction", test_fraction),
        ("val_fraction", val_fraction),
    ):
        check_rate(name, value)
    if calib_fraction + test_fraction + val_fraction >= 0.9:
        raise ValueError(
            "calib_fraction + test_fraction + val_fraction must leave at least 10% for training, "
            f"got {calib_fraction + test_fraction + val_fraction:.2f}"
        )
    digits = load_digits()
    x = (digits.images.astype(np.float32) / DIGITS_PIXEL_MAX)[:, None, :, :]
    y = digits.target.astype(np.int64)
    idx = np.arange(len(y))
    rest, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    rest_share = 1.0 - test_fraction
    rest, calib_idx = train_test_split(
        rest, test_size=calib_fraction / rest_share, random_state=seed + 1, stratify=y[rest]
    )
    train_share = rest_share - calib_fraction
    train_idx, val_idx = train_test_split(
        rest, test_size=val_fraction / train_share, random_state=seed + 2, stratify=y[rest]
    )

    def pick(ids: np.ndarray) -> Split:
        ids = np.sort(ids)
        return Split(torch.from_numpy(x[ids].copy()), torch.from_numpy(y[ids].copy()))

    return DigitsSplits(pick(train_idx), pick(val_idx), pick(calib_idx), pick(test_idx))
