"""Simulation harness for Byzantine-robust training: data splits, D-SGD with worker momentum,
attacks, and worst-case accuracy over attacks for each defence."""

from verde.robust.harness.data import (
    ArrayDataset,
    dirichlet_split,
    from_torch_datasets,
    iid_split,
    load_digits_dataset,
)
from verde.robust.harness.simulate import (
    SimulationConfig,
    SimulationResult,
    evaluate_defences,
    simulate,
    worst_case,
)

__all__ = [
    "ArrayDataset", "SimulationConfig", "SimulationResult", "dirichlet_split",
    "evaluate_defences", "from_torch_datasets", "iid_split", "load_digits_dataset", "simulate",
    "worst_case",
]
