"""Which samples form the batch of each step: a pure function of (seed, step).

Why: the batch of step ``s`` must be something the arbiter can name without trusting anyone,
so that a provider cannot train on other data and a data sample can be demanded with its proof
(Verde, Arun et al. 2025). Training batches are drawn from repops' counter-based generator:
``repops.rng.PhiloxStream(seed, stream=step)`` and ``repops.rng.ops.randint`` (64-bit Philox
draws mapped to ``[0, n)`` by multiply-shift, integer arithmetic only, specified in
repops/spec/elementwise.md), so the batch of step ``s`` is the same on every machine and is
independent of every other step. Inference jobs read the dataset in order, batch after batch,
wrapping around at the end.
"""

from __future__ import annotations


def batch_indices(kind: str, seed: int, step: int, n_samples: int, batch_size: int) -> list[int]:
    """Sample indices of the batch of ``step`` (1-based) for a job of ``kind``."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if n_samples < 1 or batch_size < 1:
        raise ValueError("n_samples and batch_size must be positive")
    if kind == "infer":
        start = (step - 1) * batch_size
        return [(start + i) % n_samples for i in range(batch_size)]
    from repops.rng import PhiloxStream
    from repops.rng.ops import randint

    draws = randint(PhiloxStream(seed, stream=step), 0, n_samples, (batch_size,))
    return [int(i) for i in draws.tolist()]
