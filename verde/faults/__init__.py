"""Cheating providers for tests and the demo: fault plans and the provider that follows them."""

from verde.faults.plan import ANSWER_FAULTS, COMPUTE_FAULTS, FaultPlan, catalogue
from verde.faults.provider import CheatingProvider

__all__ = ["ANSWER_FAULTS", "COMPUTE_FAULTS", "CheatingProvider", "FaultPlan", "catalogue"]
