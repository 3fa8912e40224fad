"""Byzantine-robust aggregation and Byzantine clients for Flower's Message API (flwr >= 1.42).

- :class:`RobustStrategy`: a Flower ``Strategy`` (a ``FedAvg`` subclass, so sampling, the
  evaluation rounds and metric aggregation are Flower's own) that aggregates the clients'
  *updates* (reply weights minus the global weights sent that round) with any verde rule and
  any composition of pre-aggregators, weights them by the clients' example counts where the
  rule allows it, rejects malformed replies instead of failing the round, and reports in its
  metrics which clients the rule excluded or down-weighted.
- :func:`attack_mod`: any of verde's update attacks as a Flower client mod, so a deployment
  can be measured against Byzantine clients of its own.

Install with ``pip install 'verde[flower]'``. The names are loaded on first use, so a ClientApp
that only uses the mod does not import the aggregation rules.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AggregationReport", "RobustStrategy", "attack_mod", "flatten_arrays",
           "unflatten_arrays"]

_HOMES = {"AggregationReport": "report", "RobustStrategy": "strategy", "attack_mod": "mods",
          "flatten_arrays": "records", "unflatten_arrays": "records"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
