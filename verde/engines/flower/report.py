"""Which clients a rule excluded or down-weighted in one round, and how that is measured.

Rules do not return weights, and many are not weighted averages at all (coordinate-wise
median, Bulyan, centered clipping). One measure fits every rule and every composition: the
*effective weights* w minimising ||sum_i w_i u_i - aggregate|| over the clients' updates u_i.
For rules whose output is a weighted combination of the updates (mean, Krum, Multi-Krum, MDA,
SMEA, MoNNA, DnC, CAF, geometric median, FLTrust, SignGuard, Flag) these are the rule's own
weights, exactly up to rounding, whenever the updates are linearly independent; for the others
they are the best linear description of what the rule did. The fit uses a fixed, seeded
sample of ``8n + 32`` coordinates, so it costs O(n^3), not O(n^2 d).

A client is *excluded* when its effective weight is at most ``1e-3 / n`` (zero, up to the fit),
*down-weighted* when it is below half the weight FedAvg would give it (its example share).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

EXCLUDED_BELOW = 1e-3  # times 1/n
DOWNWEIGHTED_BELOW = 0.5  # times the client's FedAvg share


@dataclass(frozen=True)
class AggregationReport:
    """One round: node ids in reply order, effective and FedAvg weights, and the verdicts."""

    node_ids: list[int]
    weights: list[float]
    fair_weights: list[float]
    excluded: list[int] = field(default_factory=list)
    downweighted: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)  # node id -> why its reply was unusable
    weighted_by_examples: bool = False
    applied: bool = True  # False when the aggregate was non-finite and the model kept

    def metrics(self) -> dict[str, int | float | list[int] | list[float]]:
        """The report as MetricRecord entries (``verde.*`` keys)."""
        return {
            "verde.clients": len(self.node_ids),
            "verde.excluded": len(self.excluded),
            "verde.downweighted": len(self.downweighted),
            "verde.rejected": len(self.rejected),
            "verde.excluded-nodes": list(self.excluded),
            "verde.downweighted-nodes": list(self.downweighted),
            "verde.rejected-nodes": list(self.rejected),
            "verde.node-ids": list(self.node_ids),
            "verde.weights": [float(w) for w in self.weights],
            "verde.weighted-by-examples": int(self.weighted_by_examples),
            "verde.applied": int(self.applied),
        }


def effective_weights(updates: np.ndarray, aggregate: np.ndarray, seed: int = 0) -> np.ndarray:
    """Least-squares weights of ``aggregate`` over the rows of ``updates`` (see module doc)."""
    n, d = updates.shape
    k = min(d, 8 * n + 32)
    cols = np.sort(np.random.default_rng(seed).choice(d, size=k, replace=False)) if k < d \
        else np.arange(d)
    x = updates[:, cols].astype(np.float64).T  # (k, n)
    a = aggregate[cols].astype(np.float64)
    good = np.isfinite(x).all(axis=0)
    w = np.zeros(n)
    if good.any() and np.isfinite(a).all():
        # gelsy (complete orthogonal factorisation): the same minimum-norm solution as numpy's
        # SVD-based gelsd, also for rank-deficient updates (cloned clients), in ~60% the time.
        sol, *_ = scipy.linalg.lstsq(x[:, good], a, lapack_driver="gelsy", check_finite=False)
        w[good] = sol
    return w


def build_report(node_ids: list[int], updates: np.ndarray, aggregate: np.ndarray,
                 counts: np.ndarray, *, weighted: bool, rejected: dict[int, str],
                 applied: bool) -> AggregationReport:
    n = len(node_ids)
    w = effective_weights(updates, aggregate)
    fair = counts / counts.sum() if weighted else np.full(n, 1.0 / n)
    excluded = [node_ids[i] for i in range(n) if w[i] <= EXCLUDED_BELOW / n]
    down = [node_ids[i] for i in range(n)
            if w[i] > EXCLUDED_BELOW / n and w[i] < DOWNWEIGHTED_BELOW * fair[i]]
    return AggregationReport(node_ids, w.tolist(), fair.tolist(), excluded, down, rejected,
                             weighted, applied)
