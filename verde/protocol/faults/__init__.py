"""Cheating providers for tests and the demo: fault plans and the provider that follows them."""

from verde.protocol.faults.plan import ANSWER_FAULTS, COMPUTE_FAULTS, FaultPlan, catalogue
from verde.protocol.faults.provider import CheatingProvider

__all__ = ["ANSWER_FAULTS", "COMPUTE_FAULTS", "CheatingProvider", "FaultPlan", "catalogue"]
