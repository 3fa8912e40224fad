"""Which samples form the batch of each step: a pure function of (seed, step).

Why: the batch of step ``s`` must be something the arbiter can name without trusting anyone,
so that a provider cannot train on other data and a data sample can be demanded with its proof
(Verde, Arun et al. 2025). Training batches are drawn with a counter-based generator keyed by
the job seed and the step (numpy's Philox-4x64, whose stream numpy documents as stable across
platforms and versions); index ``i`` is the high 64x64->128 product of a draw and the dataset
size (multiply-shift), which needs only integer arithmetic. Inference jobs read the dataset in
order, batch after batch, wrapping around at the end.

TODO(repops.rng): switch the draws to ``repops.rng.PhiloxStream(seed, stream=step)`` once it
is available, so all randomness in verde comes from one specified generator.
"""

from __future__ import annotations

import numpy as np


def batch_indices(kind: str, seed: int, step: int, n_samples: int, batch_size: int) -> list[int]:
    """Sample indices of the batch of ``step`` (1-based) for a job of ``kind``."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if n_samples < 1 or batch_size < 1:
        raise ValueError("n_samples and batch_size must be positive")
    if kind == "infer":
        start = (step - 1) * batch_size
        return [(start + i) % n_samples for i in range(batch_size)]
    generator = np.random.Philox(key=seed, counter=[0, 0, 0, step])
    draws = generator.random_raw(batch_size).astype(np.uint64)
    return [int((int(d) * n_samples) >> 64) for d in draws]
